//! A type-check stand-in for r2r 0.9.5: the signatures `agent/src/ros2/node.rs` uses, as
//! r2r declares them (`nodes.rs`, `publishers.rs`, `parameters.rs`,
//! `action_servers.rs`, `qos.rs`, `context.rs`) and the type r2r would generate from
//! `launch/ros2/embodied_r_interfaces/action/Ask.action`. CI patches it in for one
//! `cargo check --features ros2` (see `.ci/run`) so the node keeps compiling as the runtime
//! changes; it cannot check r2r's behaviour, and nothing here does anything: `Node::create`
//! always fails. Keep it in step with the r2r version the agent pins.

#![allow(non_camel_case_types, clippy::new_without_default)]

use futures::Stream;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// r2r's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// r2r's error type (one variant of rcl's many).
#[derive(thiserror::Error, Clone, Debug)]
pub enum Error {
    /// rcl's generic failure.
    #[error("RCL_RET_ERROR")]
    RCL_RET_ERROR,
}

/// A parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParameterValue {
    NotSet,
    Bool(bool),
    Integer(i64),
    Double(f64),
    String(String),
    BoolArray(Vec<bool>),
    ByteArray(Vec<u8>),
    IntegerArray(Vec<i64>),
    DoubleArray(Vec<f64>),
    StringArray(Vec<String>),
}

/// A parameter.
pub struct Parameter {
    pub value: ParameterValue,
    pub description: &'static str,
}

/// Quality of service.
#[derive(Clone, Copy)]
pub struct QosProfile {
    pub depth: usize,
}

impl QosProfile {
    pub const fn sensor_data() -> Self {
        QosProfile { depth: 5 }
    }
}

impl Default for QosProfile {
    fn default() -> Self {
        QosProfile { depth: 10 }
    }
}

/// The rcl context.
#[derive(Clone)]
pub struct Context;

impl Context {
    pub fn create() -> Result<Context> {
        Err(Error::RCL_RET_ERROR)
    }
}

/// A publisher of serialized messages.
pub struct PublisherUntyped {
    _handle: Weak<()>,
}

impl PublisherUntyped {
    pub fn publish_raw(&self, _data: &[u8]) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
}

/// Implemented by generated action types.
pub trait WrappedActionTypeSupport {
    type Goal: Send;
    type Result;
    type Feedback;
}

/// A cancel request.
pub struct ActionServerCancelRequest {
    pub uuid: u128,
}

impl ActionServerCancelRequest {
    pub fn accept(self) {}
    pub fn reject(self) {}
}

/// A goal request.
pub struct ActionServerGoalRequest<T: WrappedActionTypeSupport> {
    pub uuid: u128,
    pub goal: T::Goal,
}

// SAFETY: as r2r declares it; nothing here is ever constructed at run time.
unsafe impl<T: WrappedActionTypeSupport> Send for ActionServerGoalRequest<T> {}

impl<T: 'static + WrappedActionTypeSupport> ActionServerGoalRequest<T> {
    #[allow(clippy::type_complexity)]
    pub fn accept(
        self,
    ) -> Result<(
        ActionServerGoal<T>,
        impl Stream<Item = ActionServerCancelRequest> + Unpin,
    )> {
        Err::<
            (
                ActionServerGoal<T>,
                futures::stream::Empty<ActionServerCancelRequest>,
            ),
            _,
        >(Error::RCL_RET_ERROR)
    }

    pub fn reject(self) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
}

/// An accepted goal.
pub struct ActionServerGoal<T: WrappedActionTypeSupport> {
    pub uuid: u128,
    pub goal: T::Goal,
    _server: Weak<Mutex<*mut u8>>,
}

impl<T: WrappedActionTypeSupport> Clone for ActionServerGoal<T>
where
    T::Goal: Clone,
{
    fn clone(&self) -> Self {
        ActionServerGoal {
            uuid: self.uuid,
            goal: self.goal.clone(),
            _server: self._server.clone(),
        }
    }
}

// SAFETY: as r2r declares it; nothing here is ever constructed at run time.
unsafe impl<T: WrappedActionTypeSupport> Send for ActionServerGoal<T> {}

impl<T: 'static + WrappedActionTypeSupport> ActionServerGoal<T> {
    pub fn publish_feedback(&self, _msg: T::Feedback) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
    pub fn cancel(&mut self, _msg: T::Result) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
    pub fn abort(&mut self, _msg: T::Result) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
    pub fn succeed(&mut self, _msg: T::Result) -> Result<()> {
        Err(Error::RCL_RET_ERROR)
    }
}

/// A node.
pub struct Node {
    pub params: Arc<Mutex<indexmap::IndexMap<String, Parameter>>>,
    _handle: Box<*mut u8>,
}

// SAFETY: as r2r declares it; nothing here is ever constructed at run time.
unsafe impl Send for Node {}

impl Node {
    pub fn create(_ctx: Context, _name: &str, _namespace: &str) -> Result<Node> {
        Err(Error::RCL_RET_ERROR)
    }

    pub fn subscribe_raw(
        &mut self,
        _topic: &str,
        _topic_type: &str,
        _qos_profile: QosProfile,
    ) -> Result<impl Stream<Item = Vec<u8>> + Unpin> {
        Err::<futures::stream::Empty<Vec<u8>>, _>(Error::RCL_RET_ERROR)
    }

    pub fn create_publisher_untyped(
        &mut self,
        _topic: &str,
        _topic_type: &str,
        _qos_profile: QosProfile,
    ) -> Result<PublisherUntyped> {
        Err(Error::RCL_RET_ERROR)
    }

    #[allow(clippy::type_complexity)]
    pub fn make_parameter_handler(
        &mut self,
    ) -> Result<(
        impl Future<Output = ()> + Send,
        impl Stream<Item = (String, ParameterValue)>,
    )> {
        Err::<
            (
                std::future::Ready<()>,
                futures::stream::Empty<(String, ParameterValue)>,
            ),
            _,
        >(Error::RCL_RET_ERROR)
    }

    pub fn create_action_server<T: 'static + WrappedActionTypeSupport>(
        &mut self,
        _action_name: &str,
    ) -> Result<impl Stream<Item = ActionServerGoalRequest<T>> + Unpin> {
        Err::<futures::stream::Empty<ActionServerGoalRequest<T>>, _>(Error::RCL_RET_ERROR)
    }

    pub fn spin_once(&mut self, _timeout: Duration) {}
}

/// What r2r generates from `embodied_r_interfaces/action/Ask.action`.
pub mod embodied_r_interfaces {
    pub mod action {
        #[allow(non_snake_case)]
        pub mod Ask {
            pub struct Action;
            #[derive(Clone, Default, Debug)]
            pub struct Goal {
                pub question: String,
                pub choices: Vec<String>,
                pub window: String,
                pub deadline_ms: u32,
            }
            #[derive(Clone, Default, Debug)]
            pub struct Result {
                pub ok: bool,
                pub reply_json: String,
                pub choice: String,
                pub text: String,
                pub nav_action: String,
            }
            #[derive(Clone, Default, Debug)]
            pub struct Feedback {
                pub stage: String,
                pub partial: String,
            }
            impl crate::WrappedActionTypeSupport for Action {
                type Goal = Goal;
                type Result = Result;
                type Feedback = Feedback;
            }
        }
    }
}
