//! Script dialogue core: loads 话术 documents and runs them as deterministic conversations.
//!
//! Pipeline: [`Script::load`] (tolerant Markdown loader) → [`Conversation::new`]
//! (a pure state machine over the steps) fed with utterances or silences plus the
//! current time → [`Action`]s (say lines, record fields, schedule a callback, hang
//! up). Drivers (text chat now, phone calls later) own the clocks and the I/O.
//! No LLM: replies are classified by keywords matched on characters and pinyin,
//! and questions are answered from the script's Q&A by lexical retrieval.

pub mod cli;
pub mod demo;
pub mod encoder;
pub mod engine;
pub mod eval;
pub mod intent;
pub mod kb;
pub mod script;
mod script_cards;
mod script_layout;
mod script_model_call;
mod script_outline;
mod script_sheet;
mod script_slides;
mod script_sop;
mod script_table;
pub mod sim;
pub mod slots;
pub mod text;
pub mod timeparse;
pub mod turn_end;

pub use engine::{
    Action, Conversation, FixedLine, Outcome, TransferReason, TransferResult, TurnResult,
};
pub use intent::Intent;
pub use kb::KnowledgeBase;
pub use script::{Script, Step, StepKind};

/// Errors of the dialogue core.
#[derive(Debug, thiserror::Error)]
pub enum DialogueError {
    #[error("cannot read call script {path}: {source} (check the path passed with --script)")]
    ScriptRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}, line {line}: {what}; a script needs numbered steps under a heading such as \"### 分步流程和话术\", e.g. \"1. **身份确认**\" followed by \"- “您好，请问是…吗？”\"")]
    NoSteps {
        source_name: String,
        line: usize,
        what: String,
    },
    #[error("{source_name}: no value for placeholder(s) {}; pass them with --var NAME=VALUE", names.iter().map(|n| format!("{{{{{n}}}}}")).collect::<Vec<_>>().join(", "))]
    MissingVars {
        source_name: String,
        names: Vec<String>,
    },
    #[error("call records: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}
