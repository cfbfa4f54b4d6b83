//! A bounded queue that never blocks its producer: when full, the oldest item is dropped and
//! counted. Sensor sources push frames into it so capture never waits for reasoning.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Counters of a [`DropOldest`] queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items pushed.
    pub pushed: u64,
    /// Items dropped because the queue was full.
    pub dropped: u64,
    /// Items taken out.
    pub popped: u64,
}

struct Inner<T> {
    items: VecDeque<T>,
    stats: QueueStats,
    closed: bool,
}

/// A bounded multi-producer queue with drop-oldest overflow.
pub struct DropOldest<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    capacity: usize,
}

impl<T> DropOldest<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.max(1)),
                stats: QueueStats::default(),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves the queue consistent (plain VecDeque ops).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an item, dropping the oldest when full. Returns `true` when something was dropped.
    pub fn push(&self, item: T) -> bool {
        let mut g = self.lock();
        let dropped = if g.items.len() >= self.capacity {
            g.items.pop_front();
            g.stats.dropped += 1;
            true
        } else {
            false
        };
        g.items.push_back(item);
        g.stats.pushed += 1;
        drop(g);
        self.ready.notify_one();
        dropped
    }

    /// Whether the queue holds `capacity` items (the next push would drop one).
    pub fn is_full(&self) -> bool {
        self.lock().items.len() >= self.capacity
    }

    /// Takes the oldest item, waiting up to `timeout`; `None` on timeout or when closed and empty.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(item) = g.items.pop_front() {
                g.stats.popped += 1;
                return Some(item);
            }
            if g.closed {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self
                .ready
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Takes the oldest item without waiting.
    pub fn try_pop(&self) -> Option<T> {
        let mut g = self.lock();
        let item = g.items.pop_front();
        if item.is_some() {
            g.stats.popped += 1;
        }
        item
    }

    /// Wakes waiting consumers; later pops return what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Whether [`close`](Self::close) was called (items may still be waiting).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters so far.
    pub fn stats(&self) -> QueueStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_and_counts() {
        let q = DropOldest::new(2);
        assert!(!q.push(1));
        assert!(!q.push(2));
        assert!(q.push(3));
        assert_eq!(q.try_pop(), Some(2));
        assert_eq!(q.pop_timeout(Duration::from_millis(1)), Some(3));
        assert_eq!(q.pop_timeout(Duration::from_millis(5)), None);
        assert_eq!(
            q.stats(),
            QueueStats {
                pushed: 3,
                dropped: 1,
                popped: 2
            }
        );
        q.push(4);
        q.close();
        assert_eq!(q.pop_timeout(Duration::from_secs(5)), Some(4));
        assert_eq!(q.pop_timeout(Duration::from_secs(5)), None);
    }

    #[test]
    fn wakes_a_waiting_consumer() {
        let q = std::sync::Arc::new(DropOldest::new(4));
        let q2 = q.clone();
        let t = std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q2.push(7);
            })
            .unwrap();
        assert_eq!(q.pop_timeout(Duration::from_secs(10)), Some(7));
        t.join().unwrap();
    }
}
