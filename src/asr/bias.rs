//! Script-aware decoder biasing: the words a call is likely to hear next go into
//! Whisper's prompt as hot words ([`super::AsrConfig::prompt_with`]), so in-domain
//! words win over sound-alikes (路由器, not 录游戏). Read from the script and the
//! conversation's state; the list is bounded in characters because every prompt
//! token costs decoder time on every turn.

use std::collections::BTreeMap;

use crate::dialogue::engine::Expecting;
use crate::dialogue::{Script, StepKind};

/// Upper bound on the hot words' total characters (≈ 1.3 tokens per character for
/// Mandarin in Whisper's tokenizer).
pub const MAX_HOT_CHARS: usize = 60;

/// Answers a step of this kind usually gets (beyond the prompt's common ones).
fn expected_answers(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Convenience => &["方便", "不方便", "我是", "你打错了"],
        StepKind::Confirm => &["是的", "不是", "确认", "没问题"],
        StepKind::Feedback => &["满意", "还行", "不满意", "一般"],
        StepKind::AnyQuestions => &["没有了", "有问题", "还有一个问题"],
        StepKind::SpecialNeed => &["没有特别的", "有的"],
        StepKind::Info | StepKind::Statement => &["知道了", "好的"],
    }
}

/// Whether `word` is one of the answers some step kind expects: such hot words go
/// into the prompt's answers sentence (in place of the general answers) rather
/// than the bounded hot-word list ([`super::AsrConfig::prompt_with`]).
pub fn is_expected_answer(word: &str) -> bool {
    [
        StepKind::Convenience,
        StepKind::Confirm,
        StepKind::Feedback,
        StepKind::AnyQuestions,
        StepKind::SpecialNeed,
        StepKind::Info,
    ]
    .iter()
    .any(|&k| expected_answers(k).contains(&word))
}

/// Strips punctuation and spaces (hot words are listed with 、).
fn bare(s: &str) -> String {
    s.chars()
        .filter(|c| !super::text::is_punct_or_space(*c) && !matches!(c, '“' | '”' | '"'))
        .collect()
}

/// The words a call's transcripts are corrected towards ([`super::correct`]): the
/// callee's name and Chinese variable values (names, not numbers), then the
/// script's own uncommon nouns. FAQ questions and expected answers are not among
/// them: rewriting a sentence towards a whole question could change its meaning.
pub fn call_terms(script: &Script, vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !w.is_empty() && !out.contains(&w) {
            out.push(w);
        }
    };
    if let Some(n) = &script.callee_name {
        push(bare(n));
    }
    for v in vars.values() {
        push(bare(v));
    }
    let mut texts: Vec<&str> = vec![&script.role, &script.task, &script.opening];
    for s in &script.steps {
        texts.push(&s.title);
        texts.extend(s.lines.iter().map(String::as_str));
        texts.extend(s.conditionals.iter().map(|c| c.line.as_str()));
        texts.extend(s.conditionals.iter().map(|c| c.condition.as_str()));
    }
    for q in &script.kb {
        texts.push(&q.question);
        texts.push(&q.answer);
    }
    texts.extend(script.closing.iter().map(String::as_str));
    for t in super::correct::script_terms(texts) {
        push(t);
    }
    out
}

/// Hot words for the turn after the agent's last prompt: the current step's expected
/// answers, the call's variables (name, address), the callee's name, then the FAQ
/// questions (shortest first, as their key terms), until [`MAX_HOT_CHARS`]. Ranked:
/// the prompt carries only the first `[asr] hot_words_chars` of them.
pub fn hot_words(
    script: &Script,
    expecting: Expecting,
    vars: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut cand: Vec<String> = Vec::new();
    if let Expecting::Step(kind) = expecting {
        cand.extend(expected_answers(kind).iter().map(|s| s.to_string()));
    }
    cand.extend(vars.values().map(|v| bare(v)));
    if let Some(n) = &script.callee_name {
        cand.push(bare(n));
    }
    let mut faq: Vec<String> = script
        .kb
        .iter()
        .map(|q| bare(&q.question))
        .filter(|q| (2..=12).contains(&q.chars().count()))
        .collect();
    faq.sort_by_key(|q| q.chars().count());
    cand.extend(faq);
    let mut out: Vec<String> = Vec::new();
    let mut used = 0;
    for w in cand {
        let n = w.chars().count();
        if n == 0 || out.contains(&w) || used + n > MAX_HOT_CHARS {
            continue;
        }
        used += n;
        out.push(w);
    }
    out
}
