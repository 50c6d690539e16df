//! A byte budget shared by many connections for the messages they are receiving, and each
//! receiver's account of what it has charged to it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A number of bytes that the incoming messages of many connections may hold at once.
///
/// Each connection given the same budget (through [`Config::memory_budget`](crate::Config::memory_budget))
/// charges it as a message's buffer grows, for assembly and for inflating compressed messages,
/// and gets the bytes back when the message is handed over (`recv`), when the message or the
/// connection fails, and when the connection is dropped. A connection whose buffer would grow
/// past the budget fails with close code 1013 (try again later) and
/// [`ProtocolError::OverMemoryBudget`](crate::ProtocolError::OverMemoryBudget); it never waits
/// for budget while holding part of a message, so connections cannot deadlock on each other.
/// What is charged is the capacity of the buffers a connection grew; the buffer a
/// [`recv_into`](crate::WebSocket::recv_into) caller handed in is the caller's and is charged
/// only for what it grows beyond its size.
///
/// A [`Server`](crate::Server) creates one for all its connections
/// ([`Server::max_message_memory`](crate::Server::max_message_memory)). Clones share the same
/// count; two budgets are equal if they are clones of each other.
///
/// ```
/// let budget = syncws::MemoryBudget::new(256 << 20);
/// let config = syncws::Config::default().memory_budget(Some(budget.clone()));
/// assert_eq!(budget.used(), 0);
/// assert_eq!(config.memory_budget, Some(budget));
/// ```
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `bytes`, none of it used.
    pub fn new(bytes: usize) -> Self {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit: bytes,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The bytes the budget allows in all.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// The bytes charged to it right now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if that many are left; false (and nothing taken) otherwise.
    fn try_charge(&self, bytes: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn credit(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl PartialEq for MemoryBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for MemoryBudget {}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

/// What one receiver has charged to a budget (nothing, without one). Dropping it gives
/// everything back.
#[derive(Debug, Default)]
pub(crate) struct Account {
    budget: Option<MemoryBudget>,
    charged: usize,
}

impl Account {
    pub fn new(budget: Option<MemoryBudget>) -> Self {
        Account { budget, charged: 0 }
    }

    /// Charges a buffer's growth from `from` to `to` bytes of capacity; false if the budget
    /// cannot take it (then nothing is charged and the buffer must not grow).
    pub fn grow(&mut self, from: usize, to: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        let bytes = to.saturating_sub(from);
        if !budget.try_charge(bytes) {
            return false;
        }
        self.charged += bytes;
        true
    }

    /// Charges growth that already happened (an allocator that rounded a request up), even past
    /// the limit: the bytes are held either way.
    pub fn force(&mut self, from: usize, to: usize) {
        if let Some(budget) = &self.budget {
            let bytes = to.saturating_sub(from);
            budget.inner.used.fetch_add(bytes, Ordering::AcqRel);
            self.charged += bytes;
        }
    }

    /// Gives back everything charged: the buffer was handed over or freed.
    pub fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.credit(self.charged);
        }
        self.charged = 0;
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_gives_back_on_release_and_drop() {
        let budget = MemoryBudget::new(100);
        assert_eq!(budget.limit(), 100);
        let mut a = Account::new(Some(budget.clone()));
        let mut b = Account::new(Some(budget.clone()));
        assert!(a.grow(0, 60));
        assert!(!b.grow(0, 41), "over the limit");
        assert_eq!(budget.used(), 60);
        assert_eq!(
            format!("{budget:?}"),
            "MemoryBudget { limit: 100, used: 60 }"
        );
        assert!(b.grow(0, 40));
        assert!(!a.grow(60, 61));
        a.release();
        assert_eq!(budget.used(), 40);
        assert!(a.grow(0, 50));
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0);
        let mut free = Account::new(None);
        assert!(free.grow(0, usize::MAX));
        assert!(!budget.try_charge(usize::MAX));
        assert_eq!(budget, budget.clone());
        assert_ne!(budget, MemoryBudget::new(100));
    }

    #[test]
    fn forced_growth_past_the_limit_is_charged_and_given_back() {
        // An allocator that rounded a request up: the bytes are held, limit or not.
        let budget = MemoryBudget::new(100);
        let mut a = Account::new(Some(budget.clone()));
        assert!(a.grow(0, 90));
        a.force(90, 120);
        a.force(120, 130);
        assert_eq!(budget.used(), 130);
        assert!(!budget.try_charge(1), "over the limit now");
        a.release();
        assert_eq!(budget.used(), 0, "all of it given back");
        Account::new(None).force(0, 1000);
        assert_eq!(budget.used(), 0);
    }
}
