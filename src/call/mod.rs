//! Calls end to end: the per-call real-time pipeline joining SIP/RTP, speech and dialogue.
//!
//! Pieces that do not depend on the network live here as sans-IO logic:
//! [`barge_in`] decides when the caller talks over the agent (echo-aware) and
//! [`timing`] records when each stage of a turn happened.

pub mod barge_in;
pub mod health;
pub mod timing;
