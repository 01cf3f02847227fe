//! A stream with an idle deadline, for client and replica connections
//! alike: one timer per connection, re-armed only when it fires.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream that fails once neither side has moved a byte for `idle`.
///
/// I/O only records the time; the timer is re-armed when it fires early,
/// so a busy connection costs no timer operations per read or write, and a
/// read that waits again on the same task does not touch the timer.
pub struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last: tokio::time::Instant,
    sleep: Pin<Box<Sleep>>,
    /// The waker the armed timer holds.
    armed: Option<Waker>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            last: tokio::time::Instant::now(),
            sleep: Box::pin(tokio::time::sleep(idle)),
            armed: None,
        }
    }

    fn touch(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(waker) = &self.armed {
            if waker.will_wake(cx.waker()) && !self.sleep.is_elapsed() {
                // The timer will wake this same task when it fires.
                return false;
            }
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                self.armed = Some(cx.waker().clone());
                return false;
            }
            let deadline = self.last + self.idle;
            if tokio::time::Instant::now() >= deadline {
                return true;
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            if *n > 0 {
                this.touch();
            }
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &result {
            if *n > 0 {
                this.touch();
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
