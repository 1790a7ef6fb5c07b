//! Polling a task again at once when it wakes itself while it runs.
//!
//! hyper's HTTP/1 connection task wakes itself on every request whose body the handler reads: when
//! the handler takes the body from hyper's channel, the channel wakes the connection task that is
//! polling the handler at that very moment. Tokio's multi-thread scheduler treats a wake-up during
//! the task's own poll as a yield: the task goes to the back of the run queue and an idle worker
//! thread is woken to help, which then finds nothing to do. On a two-core machine that cost about a
//! sixth of the throughput of a server whose only work is reading the body (`docs/benchmarks.md`).
//!
//! [`InlineWake`] wraps the connection's future: a wake-up that arrives while the future is being
//! polled makes it poll again right away, a few times at most and only while tokio's cooperative
//! budget lasts; every other wake-up goes to the task as usual.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many times one poll of the task may poll the inner future again. hyper yields after 16
/// pipelined requests to let other tasks run; this bounds how far that yield can be postponed.
const MAX_REPOLLS: usize = 3;

/// The inner future is being polled.
const POLLING: u8 = 1;
/// A wake-up arrived (while polling: the poll loop takes it; otherwise it went to the task).
const WOKEN: u8 = 2;

/// A future that is polled again at once, instead of through the scheduler, when it wakes itself
/// during its own poll (see the module docs).
pub(crate) struct InlineWake<F> {
    future: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

/// The waker handed to the inner future.
struct Signal {
    state: AtomicU8,
    /// The task's own waker, for wake-ups that arrive between polls.
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.fetch_or(WOKEN, Ordering::AcqRel) & POLLING == 0 {
            self.task.wake();
        }
    }
}

impl<F: Future> InlineWake<F> {
    /// Wraps `future`.
    pub(crate) fn new(future: F) -> Self {
        let signal = Arc::new(Signal { state: AtomicU8::new(0), task: AtomicWaker::new() });
        Self { future: Box::pin(future), waker: Waker::from(signal.clone()), signal }
    }
}

impl<F: Future> Future for InlineWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.signal.task.register(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..=MAX_REPOLLS {
            this.signal.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = this.future.as_mut().poll(&mut inner) {
                this.signal.state.store(0, Ordering::Release);
                drop(this.signal.task.take());
                return Poll::Ready(out);
            }
            // Nobody woke it while it ran: it waits for something else.
            if this.signal.state.compare_exchange(POLLING, 0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Poll::Pending;
            }
            // It woke itself (or something else did meanwhile): poll again, if the task may go on.
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Enough for one turn: let the scheduler run others first.
        this.signal.state.store(0, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wake-ups that reach the task.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task waker that counts its wake-ups.
    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_self_wake_is_polled_again_without_reaching_the_task() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        // Wakes itself twice, then is done.
        let mut fut = InlineWake::new(std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        }));
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_to_the_scheduler() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut polls = 0;
        let mut fut = InlineWake::new(std::future::poll_fn(|cx| {
            polls += 1;
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        }));
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        drop(fut);
        assert_eq!(polls, MAX_REPOLLS + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_wake_between_polls_reaches_the_task() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut saved: Option<Waker> = None;
        let mut fut = InlineWake::new(std::future::poll_fn(|cx| {
            saved = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        drop(fut);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        saved.take().unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
