//! The process-wide budget for request-body bytes in flight, and reading a body within it.
//!
//! Without it the memory of bodies being read is `maxConnections` × HTTP/2 streams ×
//! `maxBodyBytes`: terabytes in theory, and any Pod that reaches the Service could exhaust the
//! webhook's memory and push the cluster onto the fail-open path. With it, bodies being read or
//! decided never hold more than the budget; what the transport holds besides (HTTP/2 windows,
//! one frame per waiting stream, TLS and HTTP/1.1 buffers) is a fixed amount per connection.
//!
//! A body with a Content-Length reserves all of it before its first byte is read, so a request
//! holds either its whole share or nothing, and requests waiting for the budget cannot starve
//! one another by each holding part of it. The wait is first come, first served (tokio's
//! semaphore is fair). A body without a length (chunked HTTP/1.1, HTTP/2 without
//! `content-length`; the API server always sends one) reserves as its bytes arrive: its first
//! frame may wait, later ones may not (waiting while holding part would let such bodies block one
//! another until their deadlines).

use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use http_body_util::BodyExt as _;
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Request-body bytes the process may hold at once.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A share of the [`BodyBudget`], returned when dropped.
#[derive(Debug)]
pub struct BodyShare {
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyShare {
    /// The bytes this share holds.
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(permit) => permit.merge(more),
            None => self.permit = Some(more),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the per-request limit.
    #[error("the body is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The budget had no room for the body before the deadline.
    #[error(
        "the server is reading too many request bodies at once ({budget} bytes in flight); retry"
    )]
    NoBudget {
        /// The budget's size.
        budget: usize,
    },
    /// The body did not arrive before the deadline.
    #[error("the body did not arrive in time")]
    TimedOut,
    /// The connection failed while the body was read.
    #[error("cannot read the body: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BodyBudget {
    /// A budget of `total` bytes (at most `u32::MAX`: the configuration checks it).
    pub fn new(total: usize) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }

    /// Bytes not held by any body now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Waits until `bytes` are free, or `deadline`.
    async fn reserve(&self, bytes: usize, deadline: Instant) -> Result<BodyShare, BodyError> {
        let mut share = BodyShare { permit: None };
        if bytes == 0 {
            return Ok(share);
        }
        let wanted = u32::try_from(bytes).map_err(|_| self.exhausted())?;
        match tokio::time::timeout_at(deadline, self.bytes.clone().acquire_many_owned(wanted)).await
        {
            Ok(Ok(permit)) => share.add(permit),
            // Timed out, or the semaphore was closed (never: nothing closes it).
            _ => return Err(self.exhausted()),
        }
        Ok(share)
    }

    /// Takes `bytes` more for `share` if they are free now.
    fn grow_now(&self, share: &mut BodyShare, bytes: usize) -> Result<(), BodyError> {
        let wanted = u32::try_from(bytes).map_err(|_| self.exhausted())?;
        let more = self
            .bytes
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| self.exhausted())?;
        share.add(more);
        Ok(())
    }

    fn exhausted(&self) -> BodyError {
        BodyError::NoBudget { budget: self.total }
    }

    /// Reads `body` in full: at most `max` bytes, by `deadline` (the wait for the budget
    /// included), holding its bytes' share of the budget, which the caller keeps until it is
    /// done with the bytes. `declared` is the Content-Length, if any (checked against `max` by
    /// the caller, so that an oversized body is refused before it waits).
    pub async fn read<B>(
        &self,
        body: B,
        declared: Option<usize>,
        max: usize,
        deadline: Instant,
    ) -> Result<(Bytes, BodyShare), BodyError>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let expected = declared.unwrap_or(0).min(max);
        let mut share = self.reserve(expected, deadline).await?;
        let mut body = std::pin::pin!(body);
        // One chunk is kept as it came (the usual case: a small review in one frame); a second
        // one starts a buffer of the expected size.
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        let mut received = 0usize;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(BodyError::TimedOut),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(BodyError::Read(e.into())),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(mut data) = frame.into_data() else {
                continue; // trailers
            };
            let chunk = data.copy_to_bytes(data.remaining());
            received = received.saturating_add(chunk.len());
            if received > max {
                return Err(BodyError::TooLarge { max });
            }
            if received > share.bytes() {
                let missing = received - share.bytes();
                if share.bytes() == 0 {
                    // Nothing held yet: waiting cannot block anyone.
                    share = self.reserve(missing, deadline).await?;
                } else {
                    self.grow_now(&mut share, missing)?;
                }
            }
            match first.take() {
                None if joined.is_empty() => first = Some(chunk),
                earlier => {
                    if let Some(earlier) = earlier {
                        joined.reserve(expected.max(earlier.len() + chunk.len()));
                        joined.extend_from_slice(&earlier);
                    }
                    joined.extend_from_slice(&chunk);
                }
            }
        }
        let bytes = match first {
            Some(only) => only,
            None => Bytes::from(joined),
        };
        Ok((bytes, share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use std::convert::Infallible;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn chunked(chunks: Vec<&'static [u8]>) -> impl Body<Data = Bytes, Error = Infallible> {
        StreamBody::new(futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c)))),
        ))
    }

    #[tokio::test]
    async fn a_read_body_holds_its_bytes_until_dropped() {
        let budget = BodyBudget::new(100);
        let (bytes, share) = budget
            .read(
                Full::new(Bytes::from_static(b"0123456789")),
                Some(10),
                50,
                soon(),
            )
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"0123456789");
        assert_eq!((share.bytes(), budget.available()), (10, 90));
        drop(share);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn chunks_without_a_length_are_joined_and_counted() {
        let budget = BodyBudget::new(100);
        let (bytes, share) = budget
            .read(chunked(vec![b"abc", b"def", b"g"]), None, 50, soon())
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdefg");
        assert_eq!(share.bytes(), 7);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused_and_returns_its_share() {
        let budget = BodyBudget::new(100);
        let err = budget
            .read(chunked(vec![b"abcdef", b"ghijkl"]), None, 8, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { max: 8 }), "{err:?}");
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn a_body_waits_for_room_until_its_deadline() {
        let budget = Arc::new(BodyBudget::new(16));
        let held = budget.reserve(10, soon()).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let err = budget
            .read(
                Full::new(Bytes::from_static(&[b'x'; 8])),
                Some(8),
                16,
                deadline,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::NoBudget { budget: 16 }), "{err:?}");
        assert!(Instant::now() >= deadline, "gave up before the deadline");

        // Room made while it waits: it goes ahead.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move {
                budget
                    .read(
                        Full::new(Bytes::from_static(&[b'x'; 8])),
                        Some(8),
                        16,
                        soon(),
                    )
                    .await
                    .map(|(bytes, _)| bytes.len())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "read without room");
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap(), 8);
    }

    #[tokio::test]
    async fn a_body_without_a_length_does_not_wait_while_holding_part() {
        let budget = BodyBudget::new(10);
        let err = budget
            .read(chunked(vec![b"abcdef", b"ghijkl"]), None, 20, soon())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::NoBudget { .. }), "{err:?}");
        assert_eq!(budget.available(), 10);
    }
}
