//! ROS 2 topic names and the zenoh key expressions ROS 2 systems use for them.
//!
//! Two layouts exist in the field:
//! - **zenoh-bridge-ros2dds** (a DDS-based ROS 2 system bridged to zenoh): the key is the
//!   topic name without its leading `/`, under the bridge's optional `namespace`
//!   (`/camera/image_raw` → `camera/image_raw`, or `bot1/camera/image_raw` with namespace
//!   `/bot1`). No type and no domain in the key.
//! - **rmw_zenoh** (ROS 2 running on zenoh natively, Jazzy and later; Humble as a backport):
//!   `<domain>/<name without leading />/<pkg>::msg::dds_::<Type>_/<type hash>`, the hash being
//!   REP 2016's `RIHS01_…` (Humble writes `TypeHashNotSupported`). Each sample also carries a
//!   33-byte attachment (sequence number, source timestamp, publisher GID).
//!
//! In both the payload is the CDR message with its encapsulation header.

use std::fmt;

/// A topic name that is not a valid ROS 2 name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ROS 2 topic name {name:?}: {why}")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What rule it breaks.
    pub why: String,
}

/// Checks a topic name (ROS 2 naming rules, without substitutions or `~`) and returns it fully
/// qualified under `namespace` when it is relative.
pub fn qualify(namespace: &str, name: &str) -> Result<String, NameError> {
    let err = |why: &str| NameError {
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() {
        return Err(err("empty; expected e.g. /camera/image_raw"));
    }
    if name.contains('~') || name.contains('{') {
        return Err(err(
            "private (~) names and substitutions are not supported; give the full name",
        ));
    }
    let full = if name.starts_with('/') {
        name.to_string()
    } else {
        let ns = namespace.trim_end_matches('/');
        let ns = if ns.is_empty() || ns.starts_with('/') {
            ns.to_string()
        } else {
            format!("/{ns}")
        };
        format!("{ns}/{name}")
    };
    check_tokens(&full).map_err(|why| NameError {
        name: name.to_string(),
        why,
    })?;
    Ok(full)
}

fn check_tokens(full: &str) -> Result<(), String> {
    if full.ends_with('/') {
        return Err("ends with '/'".into());
    }
    for token in full[1..].split('/') {
        if token.is_empty() {
            return Err("has an empty token ('//')".into());
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("token {token:?} starts with a digit"));
        }
        if let Some(c) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(format!(
                "character {c:?} is not allowed (letters, digits, '_' and '/')"
            ));
        }
    }
    Ok(())
}

/// The DDS type name of `pkg/msg/Type`: `pkg::msg::dds_::Type_`.
pub fn dds_type_name(ros_type: &str) -> Result<String, NameError> {
    let parts: Vec<&str> = ros_type.split('/').collect();
    match parts.as_slice() {
        [pkg, kind, ty] if !pkg.is_empty() && !kind.is_empty() && !ty.is_empty() => {
            Ok(format!("{pkg}::{kind}::dds_::{ty}_"))
        }
        _ => Err(NameError {
            name: ros_type.to_string(),
            why: "not a type name; expected pkg/msg/Type".into(),
        }),
    }
}

/// How ROS 2 topics map onto zenoh keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// zenoh-bridge-ros2dds, with the bridge's `namespace` (`/` or empty for none).
    Bridge {
        /// The bridge's namespace.
        namespace: String,
    },
    /// rmw_zenoh.
    RmwZenoh {
        /// `ROS_DOMAIN_ID`.
        domain: u32,
        /// Whether keys carry REP-2016 type hashes (Iron and later); Humble writes
        /// `TypeHashNotSupported`.
        type_hashes: bool,
    },
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Bridge { namespace } => {
                write!(f, "zenoh-bridge-ros2dds (namespace {namespace:?})")
            }
            Layout::RmwZenoh { domain, .. } => write!(f, "rmw_zenoh (domain {domain})"),
        }
    }
}

/// Placeholder rmw_zenoh writes on Humble where the type hash goes.
pub const NO_TYPE_HASH: &str = "TypeHashNotSupported";

impl Layout {
    /// The key to publish `topic` (fully qualified) of `ros_type` with hash `rihs01` on.
    pub fn publish_key(
        &self,
        topic: &str,
        ros_type: &str,
        rihs01: &str,
    ) -> Result<String, NameError> {
        let topic = qualify("/", topic)?;
        Ok(match self {
            Layout::Bridge { namespace } => bridge_key(namespace, &topic),
            Layout::RmwZenoh {
                domain,
                type_hashes,
            } => format!(
                "{domain}/{}/{}/{}",
                &topic[1..],
                dds_type_name(ros_type)?,
                if *type_hashes { rihs01 } else { NO_TYPE_HASH }
            ),
        })
    }

    /// The key expression to subscribe to `topic` of `ros_type`: for rmw_zenoh any type hash
    /// matches (a publisher built from other definitions still speaks the same CDR).
    pub fn subscribe_key(&self, topic: &str, ros_type: &str) -> Result<String, NameError> {
        let topic = qualify("/", topic)?;
        Ok(match self {
            Layout::Bridge { namespace } => bridge_key(namespace, &topic),
            Layout::RmwZenoh { domain, .. } => {
                format!("{domain}/{}/{}/*", &topic[1..], dds_type_name(ros_type)?)
            }
        })
    }
}

fn bridge_key(namespace: &str, topic: &str) -> String {
    let ns = namespace.trim_matches('/');
    if ns.is_empty() {
        topic[1..].to_string()
    } else {
        format!("{ns}{topic}")
    }
}

/// rmw_zenoh's per-sample attachment: sequence number and source timestamp (ns) as
/// little-endian `int64`, then the 16-byte publisher GID with its length byte.
pub fn rmw_attachment(sequence: i64, timestamp_ns: i64, gid: &[u8; 16]) -> Vec<u8> {
    let mut a = Vec::with_capacity(33);
    a.extend_from_slice(&sequence.to_le_bytes());
    a.extend_from_slice(&timestamp_ns.to_le_bytes());
    a.push(16);
    a.extend_from_slice(gid);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_qualify_and_bad_names_say_why() {
        assert_eq!(
            qualify("/", "camera/image_raw").as_deref(),
            Ok("/camera/image_raw")
        );
        assert_eq!(qualify("/bot1", "cmd_vel").as_deref(), Ok("/bot1/cmd_vel"));
        assert_eq!(qualify("bot1/", "/abs").as_deref(), Ok("/abs"));
        for (bad, why) in [
            ("", "empty"),
            ("/a//b", "empty token"),
            ("/a/", "ends with"),
            ("/1cam", "digit"),
            ("/cam-1", "'-'"),
            ("~/x", "private"),
        ] {
            let e = qualify("/", bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bridge_keys_drop_the_leading_slash_under_the_namespace() {
        let plain = Layout::Bridge {
            namespace: "/".into(),
        };
        let k = plain.subscribe_key("/camera/image_raw", "sensor_msgs/msg/Image");
        assert_eq!(k.as_deref(), Ok("camera/image_raw"));
        let ns = Layout::Bridge {
            namespace: "/bot1".into(),
        };
        let k = ns.publish_key("/cmd_vel", "geometry_msgs/msg/TwistStamped", "RIHS01_x");
        assert_eq!(k.as_deref(), Ok("bot1/cmd_vel"));
    }

    #[test]
    fn rmw_zenoh_keys_match_its_design_document() {
        // docs/design.md of ros2/rmw_zenoh: the chatter example, plain and namespaced.
        let hash = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18";
        let l = Layout::RmwZenoh {
            domain: 0,
            type_hashes: true,
        };
        assert_eq!(
            l.publish_key("/chatter", "std_msgs/msg/String", hash)
                .as_deref(),
            Ok(format!("0/chatter/std_msgs::msg::dds_::String_/{hash}").as_str())
        );
        assert_eq!(
            l.publish_key("/robot1/chatter", "std_msgs/msg/String", hash)
                .as_deref(),
            Ok(format!("0/robot1/chatter/std_msgs::msg::dds_::String_/{hash}").as_str())
        );
        assert_eq!(
            l.subscribe_key("/camera/image_raw", "sensor_msgs/msg/Image")
                .as_deref(),
            Ok("0/camera/image_raw/sensor_msgs::msg::dds_::Image_/*")
        );
        let humble = Layout::RmwZenoh {
            domain: 7,
            type_hashes: false,
        };
        assert_eq!(
            humble
                .publish_key("/chatter", "std_msgs/msg/String", hash)
                .as_deref(),
            Ok("7/chatter/std_msgs::msg::dds_::String_/TypeHashNotSupported")
        );
        assert!(l.publish_key("/x", "String", hash).is_err());
    }

    #[test]
    fn the_attachment_is_33_bytes_in_rmw_zenoh_order() {
        let a = rmw_attachment(5, 1_000, &[9; 16]);
        assert_eq!(a.len(), 33);
        assert_eq!(&a[..8], &5i64.to_le_bytes());
        assert_eq!(&a[8..16], &1_000i64.to_le_bytes());
        assert_eq!(a[16], 16);
        assert_eq!(&a[17..], &[9; 16]);
    }
}
