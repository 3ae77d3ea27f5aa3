//! Card layer of the call-script loader: scripts kept as "话术卡片" put each part
//! on a card opened by a marked title line (`▶ 卡片2｜第一步 确认身份`), often
//! between drawn rules, with marked lines inside: `■` for what is said or
//! recorded, `◆ 条件 → 处理` for a branch, `※` for a note to the agent. This
//! layer rewrites such a document, line for line, as the Markdown the loader
//! reads: a card's title becomes a section heading (a step's card a step
//! heading under one steps section), `■` and `※` lines become bullets and a
//! `◆` branch becomes the condition line the step parser reads.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{classify_heading, Section};

/// Marks that open a card's title line.
const CARD_MARKS: &[char] = &['▶', '►', '▷', '➤', '➢', '▸', '❖'];

/// Marks that open a line inside a card.
const ITEM_MARKS: &[char] = &['■', '□', '●', '○', '◆', '◇', '※', '★', '☆', '▪', '▫'];

/// Arrows that join a branch's condition to what the agent does.
const ARROWS: &[&str] = &["→", "->", "=>", "⇒", "➡", "——>"];

/// `▶ 卡片2｜第一步 确认身份`: the card's title, without its mark and number.
fn card_title(line: &str) -> Option<&str> {
    static C: OnceLock<Regex> = OnceLock::new();
    let re = C.get_or_init(|| {
        Regex::new(r"^(?:卡片|卡|[Cc]ard|CARD|第)?\s*[0-9０-９]{0,2}\s*(?:张|页)?\s*[｜|:：、.．]?\s*(.+)$")
            .unwrap_or_else(|e| panic!("card title regex: {e}"))
    });
    let t = line.trim().strip_prefix(CARD_MARKS)?;
    let t = t.trim_start_matches('\u{FE0F}').trim();
    let c = re.captures(t)?;
    let title = c.get(1)?.as_str().trim();
    (!title.is_empty()).then_some(title)
}

/// A title that names one step ("第一步 确认身份", "步骤3 核对", "Step 2").
fn is_step_title(t: &str) -> bool {
    static C: OnceLock<Regex> = OnceLock::new();
    C.get_or_init(|| {
        Regex::new(r"^(?:第\s*[0-9一二三四五六七八九十]{1,3}\s*步|步骤\s*[0-9一二三四五六七八九十]{1,3}|[Ss]tep\s*\d)")
            .unwrap_or_else(|e| panic!("step title regex: {e}"))
    })
    .is_match(t.trim())
}

/// A drawn rule between cards (━━━━, ————, ====).
fn is_rule(l: &str) -> bool {
    let t = l.trim();
    t.chars().count() >= 4
        && t.chars().all(|c| {
            matches!(
                c,
                '━' | '─' | '—' | '-' | '=' | '＝' | '_' | '*' | '═' | '~' | '·'
            )
        })
}

/// "接电话的不是本人 → “不好意思…”": the condition and what follows the arrow.
fn branch(t: &str) -> Option<(&str, &str)> {
    ARROWS.iter().find_map(|a| {
        let (cond, then) = t.split_once(a)?;
        let (cond, then) = (cond.trim(), then.trim());
        (!cond.is_empty() && !then.is_empty() && cond.chars().count() <= 40).then_some((cond, then))
    })
}

/// The condition words a step parser reads before a branch's condition.
pub(super) fn as_condition(cond: &str) -> String {
    if cond.starts_with(['若', '如', '当']) {
        cond.to_string()
    } else {
        format!("如果{cond}")
    }
}

/// The document rewritten as Markdown when it is a deck of cards: at least three
/// marked title lines, one of them a step's card.
pub(super) fn cards_as_markdown(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let titles: Vec<Option<&str>> = lines.iter().map(|l| card_title(l)).collect();
    let cards = titles.iter().flatten().count();
    if cards < 3 || !titles.iter().flatten().any(|t| is_step_title(t)) {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    let mut in_steps = false;
    let mut steps_opened = false;
    let mut section = Section::Unknown;
    let mut titled = false;
    for (line, title) in lines.iter().zip(&titles) {
        if let Some(t) = title {
            if is_step_title(t) {
                if !steps_opened {
                    // The steps section's heading takes the rule or blank line above
                    // the first step's card, so later lines keep their numbers.
                    let heading = "## 通话流程".to_string();
                    match out.last_mut() {
                        Some(prev) if prev.trim().is_empty() => *prev = heading,
                        _ => out.push(heading),
                    }
                    steps_opened = true;
                }
                in_steps = true;
                section = Section::Steps;
                out.push(format!("### {t}"));
            } else {
                in_steps = false;
                section = classify_heading(t, false);
                out.push(format!("## {t}"));
            }
            continue;
        }
        if is_rule(line) {
            out.push(String::new());
            continue;
        }
        let t = line.trim();
        if t.is_empty() {
            out.push(String::new());
            continue;
        }
        let Some(item) = t.strip_prefix(ITEM_MARKS) else {
            // The deck's first line names the document.
            if !titled && out.iter().all(|l| l.trim().is_empty()) {
                titled = true;
                out.push(format!("# {t}"));
            } else {
                out.push(line.to_string());
            }
            continue;
        };
        let item = item.trim_start_matches('\u{FE0F}').trim();
        let branch_mark = t.starts_with(['◆', '◇']);
        match branch(item) {
            Some((cond, then)) if in_steps || branch_mark => {
                out.push(format!("- {}：{then}", as_condition(cond)))
            }
            // Settings cards: "外呼身份：…" is a label the loader reads as such.
            _ if !in_steps
                && matches!(
                    section,
                    Section::Unknown | Section::Role | Section::Task | Section::Profile
                ) =>
            {
                out.push(item.to_string())
            }
            _ => out.push(format!("- {item}")),
        }
    }
    steps_opened.then(|| out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::super::script::Script;
    use super::*;

    #[test]
    fn card_titles_and_step_titles() {
        assert_eq!(
            card_title("▶ 卡片2｜第一步 确认身份"),
            Some("第一步 确认身份")
        );
        assert_eq!(card_title("▶ 卡片10｜常见问题"), Some("常见问题"));
        assert_eq!(card_title("► 开场白"), Some("开场白"));
        assert_eq!(card_title("■ 话术：您好"), None);
        assert!(is_step_title("第一步 确认身份"));
        assert!(is_step_title("步骤3 核对"));
        assert!(!is_step_title("结束语"));
        assert_eq!(
            branch("客户要换时间 → 问哪天几点"),
            Some(("客户要换时间", "问哪天几点"))
        );
    }

    /// A deck of cards: settings, an opening card, steps with spoken and record
    /// lines, arrow branches and notes, a closing card, end conditions and a Q&A.
    #[test]
    fn a_script_as_cards() {
        let doc = "晨光家政 · 保洁回访 外呼话术卡片
━━━━━━━━━━━━
▶ 卡片0｜基本信息
■ 外呼身份：晨光家政客服中心，客服“小晨”
■ 通话目的：回访上周的保洁服务，约下次上门时间
━━━━━━━━━━━━
▶ 卡片1｜开场白
■ 话术：“您好，这里是晨光家政客服中心，我是小晨，请问是{{姓名}}吗？”
━━━━━━━━━━━━
▶ 卡片2｜第一步 服务评价
■ 话术：“上周阿姨上门打扫，您觉得满意吗？”
■ 记录：满意度
◆ 客户说不满意 → “非常抱歉，我记下来，让主管跟您联系。”
※ 提醒（坐席看，不要念）：客户抱怨时先道歉，不要争辩
━━━━━━━━━━━━
▶ 卡片3｜第二步 下次上门
■ 话术：“下次想约哪天上门？”
■ 记录：上门时间
━━━━━━━━━━━━
▶ 卡片4｜结束语
■ 完成：“好的，都记下了，祝您生活愉快，再见！”
━━━━━━━━━━━━
▶ 卡片5｜结束条件
■ 上门时间约好
■ 客户说不用了
━━━━━━━━━━━━
▶ 卡片6｜常见问题
Q1. 阿姨能指定吗？
A1. 可以，您说一下阿姨的姓，我们尽量安排。
";
        let s = Script::parse(doc, "cards").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert!(s.role.contains("小晨"), "{s}");
        assert_eq!(
            s.opening, "您好，这里是晨光家政客服中心，我是小晨，请问是{{姓名}}吗？",
            "{s}"
        );
        assert_eq!(s.steps.len(), 2, "{s}");
        let st = &s.steps[0];
        assert_eq!(st.lines, ["上周阿姨上门打扫，您觉得满意吗？"], "{s}");
        assert_eq!(st.collects, ["满意度"], "{s}");
        assert_eq!(st.conditionals.len(), 1, "{s}");
        assert_eq!(
            st.conditionals[0].line, "非常抱歉，我记下来，让主管跟您联系。",
            "{s}"
        );
        assert_eq!(st.directions.len(), 1, "{s}");
        assert_eq!(s.closing, ["好的，都记下了，祝您生活愉快，再见！"], "{s}");
        assert_eq!(s.end_conditions, ["上门时间约好", "客户说不用了"], "{s}");
        assert_eq!(s.kb.len(), 1, "{s}");
        assert_eq!(
            s.kb[0].answer, "可以，您说一下阿姨的姓，我们尽量安排。",
            "{s}"
        );
    }
}
