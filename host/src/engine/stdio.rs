//! Captured stdout and stderr that never trap the guest.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest on a write past its
//! capacity. [`Capture`] instead accepts every write, keeps a bounded part
//! (the head, for output, or the tail, for logs) and counts the rest.

use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which part of the stream to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first bytes: a command module's stdout is its output.
    Head,
    /// The last bytes: what a report shows of stderr.
    Tail,
}

/// A bounded in-memory sink for a guest's stdout or stderr.
#[derive(Clone, Debug)]
pub struct Capture {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    keep: Keep,
    cap: usize,
    data: VecDeque<u8>,
    total: u64,
}

impl Capture {
    /// Keeps at most `cap` bytes, from the head or the tail.
    pub fn new(keep: Keep, cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        Capture {
            inner: Arc::new(Mutex::new(Buffer {
                keep,
                cap,
                data: VecDeque::new(),
                total: 0,
            })),
        }
    }

    /// Total bytes written, kept or not.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// The kept bytes.
    pub fn contents(&self) -> Vec<u8> {
        let buffer = self.lock();
        let (a, b) = buffer.data.as_slices();
        [a, b].concat()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        // A poisoned lock only means a panic elsewhere mid-write; the bytes
        // are still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        buffer.total += bytes.len() as u64;
        let cap = buffer.cap;
        match buffer.keep {
            Keep::Head => {
                let room = cap.saturating_sub(buffer.data.len());
                buffer.data.extend(&bytes[..bytes.len().min(room)]);
            }
            Keep::Tail => {
                let bytes = &bytes[bytes.len().saturating_sub(cap)..];
                let overflow = (buffer.data.len() + bytes.len()).saturating_sub(cap);
                buffer.data.drain(..overflow);
                buffer.data.extend(bytes);
            }
        }
    }
}

/// How much a guest may write in one go; any value works since nothing is
/// ever refused.
const WRITE_BUDGET: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_keeps_the_first_bytes_and_counts_all() {
        let capture = Capture::new(Keep::Head, 4);
        capture.write_bytes(b"abc");
        capture.write_bytes(b"defg");
        assert_eq!(capture.contents(), b"abcd");
        assert_eq!(capture.total(), 7);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let capture = Capture::new(Keep::Tail, 4);
        capture.write_bytes(b"abc");
        capture.write_bytes(b"defg");
        assert_eq!(capture.contents(), b"defg");
        capture.write_bytes(b"123456");
        assert_eq!(capture.contents(), b"3456");
        assert_eq!(capture.total(), 13);
    }
}
