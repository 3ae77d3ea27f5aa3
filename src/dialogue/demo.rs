//! Demo scripts of our own in the documented 话术 format, embedded in the binary:
//! an outbound broadband installation appointment and an inbound support
//! hotline (the embedded default agent runs the inbound one).

use super::script::Script;
use super::DialogueError;

/// Outbound: broadband installation appointment confirmation.
pub const OUTBOUND: &str = include_str!("demo/outbound.md");
/// Inbound: a home-broadband support hotline.
pub const INBOUND: &str = include_str!("demo/inbound.md");

/// The script the agent runs when no script is configured.
pub fn default_script() -> Result<Script, DialogueError> {
    Script::parse(INBOUND, "embedded:inbound")
}

/// Parses the outbound demo.
pub fn outbound_script() -> Result<Script, DialogueError> {
    Script::parse(OUTBOUND, "embedded:outbound")
}
