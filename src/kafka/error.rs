//! Why a session of the Kafka run ended: a failure no retry can fix, or one the next session
//! retries.

use rdkafka::error::KafkaError;

#[derive(Debug)]
pub(super) enum SessionError {
    /// Configuration or topology that no retry can fix.
    Fatal(anyhow::Error),
    /// The brokers, a transaction or a rebalance failed; start a new session.
    Retry(anyhow::Error),
}

impl From<anyhow::Error> for SessionError {
    fn from(e: anyhow::Error) -> Self {
        SessionError::Retry(e)
    }
}

impl From<KafkaError> for SessionError {
    fn from(e: KafkaError) -> Self {
        SessionError::Retry(e.into())
    }
}
