//! Layout layer of the call-script loader.
//!
//! Scripts exported from Word, from call-robot platforms or from spreadsheets mark
//! their sections and steps without Markdown: a title between `====` rulers, a
//! chapter marker (`■ 开场白`), a numbered or bracketed title (`一、基础设置`,
//! `（二）开场白`, `【常见问答】`), and step labels such as `>>> 节点1：身份确认` or
//! `话术一｜了解故障`. This layer finds those titles and labels and rewrites them, line
//! for line, as the Markdown headings the loader reads (`## 开场白`, `### 节点1：…`),
//! so that every layout goes through the same section, step, line and Q&A rules
//! and loads to the same structure as the script written with headings. Line
//! numbers are kept: a rewritten line stays on its line, and rulers and other
//! decoration become blank lines, so they are never said.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{
    a_re, callee_words, classify_heading, clean_heading, heading_re, plain_heading_re, q_re, re,
    step_re, Section, AGENT_HALF, CALLEE_HALF,
};
use super::text::{has_quote, strip_markup};

/// The document's lines with layout titles rewritten as headings, and what the
/// layer has to say about them.
pub(super) struct Layout {
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
    /// The first step label outside any steps section (0-based line, label): what
    /// to point at when the document turns out to have no steps.
    pub stray_step: Option<(usize, String)>,
}

/// How to fix steps that have no steps section.
pub(super) const STEPS_TITLE_FIX: &str =
    "put the steps under a title such as \"三、主流程\", \"■ 话术流程\" or \"### 分步流程和话术\"";

/// How a section title is marked. Inside a steps section only a title marked the
/// way the steps section's own title is (or a ruler, a chapter marker, a heading)
/// starts a new section: `三、主流程` is followed by `1. 核对客户信息`, a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Markdown,
    Ruler,
    Marker,
    /// `一、`
    HanComma,
    /// `1.` / `1、`
    Digit,
    /// `1｜` / `1 |` / `一｜`
    Bar,
    /// `（一）` / `(1)`
    Paren,
    /// `第一部分` / `第二章`
    Chapter,
    /// `【开场白】`
    Bracket,
}

/// Chapter markers: a line that starts with one is a section title.
const CHAPTER_MARKERS: &[char] = &['■', '□', '◼', '▌', '▍', '█', '▶', '►', '▷', '❖'];
/// Markers also used as bullets: a title only when it names a known section.
const BULLET_MARKERS: &[char] = &['◆', '◇', '●', '○', '★', '☆', '◎'];
/// Characters a ruler or decoration line is made of.
const RULER_CHARS: &[char] = &[
    '=', '-', '*', '_', '—', '–', '━', '─', '═', '~', '～', '＝', '－', '＊', '＿', '※', '◆', '◇',
    '■', '□', '●', '○', '★', '☆', '·', '﹏',
];

/// `====`, `----`, `* * *`, `━━━━`: a ruler or decoration line.
fn is_ruler(line: &str) -> bool {
    let t = line.trim();
    if t.starts_with('|') {
        return false;
    }
    let mut n = 0;
    for c in t.chars() {
        if RULER_CHARS.contains(&c) {
            n += 1;
        } else if !c.is_whitespace() {
            return false;
        }
    }
    n >= 3
}

/// Short, without sentence punctuation or quotes, not a `label：`.
fn title_like(t: &str) -> bool {
    let n = t.chars().count();
    (1..=30).contains(&n)
        && !t.contains([
            '，', '。', '？', '！', '；', '“', '”', '"', '「', '」', '『', '』',
        ])
        && !t.ends_with(['：', ':'])
}

/// Names a section the loader knows (开场白, 主流程, 知识库, …) or a half.
fn known(title: &str) -> bool {
    let t = clean_heading(title);
    !t.is_empty()
        && (classify_heading(&t, false) != Section::Unknown
            || AGENT_HALF.iter().chain(CALLEE_HALF).any(|k| t.contains(k)))
}

fn paren_title_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^[（(]\s*(?:[一二三四五六七八九十]{1,3}|\d{1,2})\s*[)）]\s*(\S.{0,15})$",
        &C,
    )
}

fn bar_title_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:[一二三四五六七八九十]{1,3}|\d{1,2})\s*[｜|┃│]\s*(\S.{0,15})$",
        &C,
    )
}

fn chapter_title_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^第\s*(?:[一二三四五六七八九十]{1,3}|\d{1,2})\s*(?:部分|章|节|篇)\s*[、：:．.]?\s*(\S.{0,15})$",
        &C,
    )
}

/// A numbered or bracketed section title on a plain line (`五、通话步骤`,
/// `（二）开场白`, `第三部分 常见问题`, `【开场白】`, `3｜通话环节`) that names a
/// known section.
fn plain_title(t: &str) -> Option<Style> {
    // A remark after the title (`二、接待流程（按表格顺序来）`) is no part of its name.
    if let Some(head) = t
        .strip_suffix(['）', ')'])
        .and_then(|r| r.rsplit_once(['（', '(']))
        .map(|(head, _)| head.trim_end())
        .filter(|h| !h.is_empty() && !h.contains(['（', '(']))
    {
        if let Some(style) = plain_title(head) {
            return Some(style);
        }
    }
    let (title, style) = if let Some(c) = plain_heading_re().captures(t) {
        match (c.get(1), c.get(2)) {
            (Some(m), _) => {
                let style = if t.starts_with(|c: char| c.is_ascii_digit()) {
                    Style::Digit
                } else {
                    Style::HanComma
                };
                (m.as_str(), style)
            }
            (None, Some(m)) => (m.as_str(), Style::Bracket),
            _ => return None,
        }
    } else if let Some(c) = bar_title_re().captures(t) {
        (c.get(1)?.as_str(), Style::Bar)
    } else if let Some(c) = paren_title_re().captures(t) {
        (c.get(1)?.as_str(), Style::Paren)
    } else if let Some(c) = chapter_title_re().captures(t) {
        (c.get(1)?.as_str(), Style::Chapter)
    } else {
        return None;
    };
    (known(title) && !title.contains(['，', '。', '？', '“', '"', '「'])).then_some(style)
}

fn step_label_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:>{1,3}|[▶►▷■□◆◇●○★☆❖◎]+)?\s*((?:节点|话术|环节)\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})(?:\s*[：:｜|、．.\-—]+\s*|\s+)\S.*)$",
        &C,
    )
}

/// A step label of the kinds call-robot platforms and Word templates use:
/// `节点1：身份确认`, `话术一｜了解故障`, `环节2 核对地址`.
pub(super) fn is_step_label(title: &str) -> bool {
    step_label_re().is_match(strip_markup(title).trim())
}

/// A step line behind decoration (`>>> 1. 身份确认`, `▶ 第2步 核对地址`): the line
/// without it, when that is a step the loader reads.
fn undecorated_step(t: &str) -> Option<&str> {
    let rest = if let Some(r) = t.strip_prefix(">>") {
        r.trim_start_matches('>')
    } else {
        t.trim_start_matches(|c| CHAPTER_MARKERS.contains(&c) || BULLET_MARKERS.contains(&c))
    };
    if rest.len() == t.len() {
        return None;
    }
    let rest = rest.trim();
    step_re().is_match(&strip_markup(rest)).then_some(rest)
}

/// Rewrites layout titles, step labels and rulers as the Markdown the loader reads.
pub(super) fn normalise(mut lines: Vec<String>) -> Layout {
    let mut warnings = Vec::new();
    let rulers: Vec<bool> = lines.iter().map(|l| is_ruler(l)).collect();
    let md_headings: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !rulers[*i])
        .filter_map(|(i, l)| heading_re().captures(l).map(|c| (i, c[1].len())))
        .collect();
    // A document title ("# 回访话术"), alone above all other headings, names the
    // document, not a section (as the loader reads it).
    let doc_title = match md_headings.as_slice() {
        [(line, lv), rest @ ..] if rest.len() >= 2 && rest.iter().all(|(_, l)| l > lv) => {
            Some(*line)
        }
        _ => None,
    };
    let md_levels: Vec<usize> = md_headings
        .iter()
        .filter(|(i, _)| Some(*i) != doc_title)
        .map(|(_, lv)| *lv)
        .collect();
    // Numbered and bracketed titles are taken only in documents without Markdown
    // headings; rulers, chapter markers and step labels in any document.
    let plain = md_levels.len() < 2;
    // Layout titles sit at the level the document's own headings mostly use.
    let level = (1..=6)
        .max_by_key(|lv| (md_levels.iter().filter(|l| *l == lv).count(), -(*lv as i64)))
        .filter(|_| !md_levels.is_empty())
        .unwrap_or(2);
    let blank = |i: usize, lines: &[String]| lines.get(i).is_none_or(|l| l.trim().is_empty());

    // "（一）确认身份 / 1. … / （二）告知情况 / 2. …": bracketed titles that group
    // steps numbered on across them. Where each group's numbers start again at 1,
    // the bracketed titles are the steps and the numbers their items.
    let group_numbers: Vec<u32> = (0..lines.len())
        .filter(|&i| paren_title_re().is_match(lines[i].trim()))
        .filter_map(|i| digit_step_after(&lines, i))
        .collect();
    let group_titles = group_numbers.len() >= 2 && group_numbers.windows(2).all(|w| w[1] > w[0]);
    let mut steps: Option<(usize, Style)> = None;
    let mut stray_step: Option<(usize, String)> = None;
    let mut section = Section::Unknown;
    for i in 0..lines.len() {
        // "Q1 门锁保修多久？ / A：整锁保修三年…" pairs after the closing lines, with
        // no title of their own: a Q&A list starts at the blank line above them.
        if section != Section::Kb && steps.is_none() && starts_qa_pairs(&lines, i) {
            if let Some(j) = (i.saturating_sub(3)..i).rev().find(|&j| blank(j, &lines)) {
                lines[j] = format!("{} 问答知识库", "#".repeat(level));
                section = Section::Kb;
            }
        }
        if rulers[i] {
            lines[i].clear();
            continue;
        }
        let t = lines[i].trim().to_string();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = heading_re().captures(&t) {
            if Some(i) == doc_title {
                continue;
            }
            section = classify_heading(&c[2], false);
            let lv = c[1].len();
            if steps.is_some_and(|(sl, _)| lv <= sl) {
                steps = None;
            }
            if steps.is_none() && classify_heading(&c[2], false) == Section::Steps {
                steps = Some((lv, Style::Markdown));
            }
            continue;
        }
        // "【坐席是谁】守望…的客服小望…", "【挂电话前】“好的，再见。”": a bracketed
        // section title with its text on the same line. After a blank line the
        // title takes the blank line and the text keeps its own; otherwise a role,
        // task or end-conditions title becomes a label.
        if let Some((label, rest)) = t
            .strip_prefix('【')
            .and_then(|r| r.split_once('】'))
            .filter(|(l, r)| title_like(l) && !r.trim().is_empty())
            .filter(|_| !step_re().is_match(&t))
        {
            let kind = classify_heading(label, false);
            let (label, rest) = (label.to_string(), rest.trim().to_string());
            let note = !has_quote(&rest);
            if plain && kind != Section::Unknown && i > 0 && blank(i - 1, &lines) {
                section = kind;
                // "【流程】按顺序来，说过的别再问": a note to the agent under the title.
                if matches!(kind, Section::Steps | Section::Kb) && note {
                    lines[i].clear();
                }
                steps = (kind == Section::Steps).then_some((level, Style::Bracket));
                lines[i - 1] = format!("{} {label}", "#".repeat(level));
                if !lines[i].is_empty() {
                    lines[i] = rest;
                }
                continue;
            }
            match kind {
                Section::Role | Section::Task => {
                    lines[i] = format!("**{label}：** {rest}");
                    continue;
                }
                // "【什么情况可以结束】已派单…；客户只是咨询…": the end conditions.
                Section::End | Section::EndConditions if note && names_end_conditions(&label) => {
                    lines[i] = format!("结束条件：{rest}");
                    continue;
                }
                Section::Steps | Section::Kb if plain && note => {
                    section = kind;
                    steps = (kind == Section::Steps).then_some((level, Style::Bracket));
                    lines[i] = format!("{} {label}", "#".repeat(level));
                    continue;
                }
                _ => {}
            }
        }
        // A section title?
        let ruler_above = i > 0 && rulers[i - 1];
        let ruler_below = rulers.get(i + 1).copied().unwrap_or(false);
        let title: Option<(String, Style)> = if ruler_below
            && title_like(&t)
            && (ruler_above || ((i == 0 || blank(i - 1, &lines)) && known(&t)))
        {
            Some((t.clone(), Style::Ruler))
        } else if let Some(first) = t
            .chars()
            .next()
            .filter(|c| CHAPTER_MARKERS.contains(c) || BULLET_MARKERS.contains(c))
        {
            let rest = t
                .trim_matches(|c| CHAPTER_MARKERS.contains(&c) || BULLET_MARKERS.contains(&c))
                .trim();
            (title_like(rest) && (CHAPTER_MARKERS.contains(&first) || known(rest)))
                .then(|| (rest.to_string(), Style::Marker))
        } else if plain {
            plain_title(&t)
                .filter(|style| match steps {
                    Some((_, s)) => s == *style,
                    None => true,
                })
                .map(|style| (t.clone(), style))
        } else {
            None
        };
        if let Some((text, style)) = title {
            let kind = classify_heading(&text, false);
            section = kind;
            steps = (kind == Section::Steps).then_some((level, style));
            lines[i] = format!("{} {text}", "#".repeat(level));
            continue;
        }
        if steps.is_some() {
            // "客户反馈A：说已经还了 → 回复：…", "(1) 读者说来不了：…": a branch of the
            // step above, written as a condition line.
            if let Some(branch) = branch_line(&t) {
                lines[i] = branch;
                continue;
            }
            // "（一）确认身份" above "1. 确认是读者本人": a group of steps, not a step.
            if group_titles
                && paren_title_re().is_match(&t)
                && digit_step_after(&lines, i).is_some()
            {
                lines[i].clear();
                continue;
            }
        }
        // "客户一般是60岁以上的老人，…最关心…" after a blank line: who is called, a
        // profile paragraph without a title of its own.
        if plain && i > 0 && blank(i - 1, &lines) && describes_callee(&t) {
            section = Section::Profile;
            steps = None;
            lines[i - 1] = format!("{} 客户画像", "#".repeat(level));
            continue;
        }
        // "结束语" or "结束条件" alone on its line after a blank one: a section title.
        if plain && (i == 0 || blank(i - 1, &lines)) && bare_section_title(&t) {
            section = classify_heading(&t, false);
            steps = None;
            lines[i] = format!("{} {t}", "#".repeat(level));
            continue;
        }
        // A step label inside a steps section.
        if let Some(c) = step_label_re().captures(&t) {
            match steps {
                Some((sl, _)) => {
                    lines[i] = format!("{} {}", "#".repeat((sl + 1).min(6)), c[1].trim());
                }
                None if stray_step.is_none() => {
                    warnings.push(format!(
                        "line {}: \"{}\" reads as a step label but is not under a steps section and was not read as a step; {STEPS_TITLE_FIX}",
                        i + 1,
                        c[1].trim()
                    ));
                    stray_step = Some((i, c[1].trim().to_string()));
                }
                None => {}
            }
            continue;
        }
        if steps.is_some() {
            if let Some(rest) = undecorated_step(&t) {
                lines[i] = rest.to_string();
                continue;
            }
        }
        // "◆ “好的，我给您留着。”": a marker used as a bullet is a list mark, not text.
        if t.starts_with(|c| CHAPTER_MARKERS.contains(&c) || BULLET_MARKERS.contains(&c)) {
            let rest = t.trim_start_matches(|c| {
                CHAPTER_MARKERS.contains(&c) || BULLET_MARKERS.contains(&c)
            });
            lines[i] = format!("- {}", rest.trim_start());
        }
    }
    Layout {
        lines,
        warnings,
        stray_step,
    }
}

fn feedback_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        concat!(
            r"^(?:[-*•·]\s*)?(?:",
            callee_words!(),
            r")?(?:反馈|回答|回应|答复|表示|说)[A-Za-z0-9一二三四五六]?\s*[：:]\s*(.+?)\s*(?:→|->|=>|⇒|➡|——>?)\s*(?:回复|回答|应答|答复|坐席|客服|话术|答)\s*[：:]\s*(.+)$"
        ),
        &C,
    )
}

fn numbered_condition_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        concat!(
            r"^[（(]\s*\d{1,2}\s*[)）]\s*((?:",
            callee_words!(),
            r"|若|如果|如|当)[^：:]{1,40}[：:].+)$"
        ),
        &C,
    )
}

/// A branch written as feedback and reply ("客户反馈A：不是本人 → 回复：麻烦您转告…")
/// or as a numbered condition ("(1) 读者说这几天来不了：可以帮读者续借"), as the
/// condition line the step parser reads ("如果不是本人：麻烦您转告…").
fn branch_line(t: &str) -> Option<String> {
    if let Some(c) = feedback_re().captures(t) {
        return Some(format!("- 如果{}：{}", c[1].trim(), c[2].trim()));
    }
    let c = numbered_condition_re().captures(t)?;
    let rest = c[1].trim();
    Some(if rest.starts_with(['若', '如', '当']) {
        format!("- {rest}")
    } else {
        format!("- 如果{rest}")
    })
}

/// The number of the step on the next non-blank line after `i`, when that line
/// is numbered with digits ("2. 告知书名").
fn digit_step_after(lines: &[String], i: usize) -> Option<u32> {
    let l = lines[i + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())?;
    let digits = l.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || !l[digits..].starts_with(['.', '、', '．', ' ']) {
        return None;
    }
    l[..digits].parse().ok()
}

/// A line that is only the name of a section other than the steps ("结束语",
/// "结束条件", "常见问题").
/// "客户一般是…，最关心…" / "来电的多是…": a paragraph describing the callee.
fn describes_callee(t: &str) -> bool {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:客户|用户|来电的?|被叫|接电话的)(?:人)?(?:一般|大多|大部分|多半|通常|基本上|主要|多)(?:都)?是",
        &C,
    )
    .is_match(t)
        && ["关心", "担心", "顾虑", "反应", "在意"]
            .iter()
            .any(|w| t.contains(w))
}

fn bare_section_title(t: &str) -> bool {
    // "什么时候挂：" on its own line is the title of the list below it.
    let t = t.strip_suffix(['：', ':']).unwrap_or(t);
    t.chars().count() <= 6
        && t.chars().all(super::text::is_han)
        && matches!(
            classify_heading(t, false),
            Section::Closing
                | Section::End
                | Section::EndConditions
                | Section::Kb
                | Section::Opening
        )
}

/// Box-drawing characters of a table drawn with lines (┌─┬─┐ │ … │ └─┴─┘).
const BOX_VERTICAL: &[char] = &['│', '┃', '║', '┆', '┇'];
const BOX_CHARS: &str = "─━═┄┅┈┉┌┍┎┏┐┑┒┓└┕┖┗┘┙┚┛├┝┞┟┠┡┢┣┤┥┦┧┨┩┪┫┬┭┮┯┰┱┲┳┴┵┶┷┸┹┺┻┼┽┾┿╀╁╂╃╄╅╆╇╈╉╊╋╔╗╚╝╠╣╦╩╬╒╓╕╖╘╙╛╜╞╟╡╢╤╥╧╨╪╫│┃║+-";

/// Emoji a chat or note app puts before a line as a marker (⚠️ 客户说…, 👉 说：…):
/// layout, not words.
const LEAD_EMOJI: &[char] = &[
    '⚠', '❗', '❕', '‼', '📌', '👉', '✅', '☑', '✔', '🔹', '🔸', '🔷', '🔶', '▪', '➡', '💡', '❓',
    '⭐', '🔔', '📍', '🟢', '🔴', '🟡', '✳', '✴', '❇', '🚩', '📝', '💬', '🗣',
];

/// Writes glyphs that chat apps and text exports use for structure as the plain
/// marks the layout layer reads, line for line: keycap digits (1️⃣ → `1.`), marker
/// emoji at a line's start (dropped), and a table drawn with box characters (`│`
/// as `|`, the rules between rows as `|---|` rows, the outer rules dropped).
pub(super) fn plain_glyphs(text: &str) -> Option<String> {
    let keycap = |l: &str| l.contains('\u{20E3}') || l.contains('🔟');
    let boxed = |l: &str| l.trim_start().starts_with(BOX_VERTICAL) || is_box_rule(l);
    let lead_emoji = |l: &str| l.trim_start().starts_with(LEAD_EMOJI);
    if !text.lines().any(|l| keycap(l) || boxed(l) || lead_emoji(l)) {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    // Inside a drawn table (after its first row).
    let mut in_table = false;
    // The physical lines of the drawn row being read (index in `out`, cells).
    let mut row: Vec<(usize, Vec<String>)> = Vec::new();
    for l in text.split('\n') {
        let mut line = l.to_string();
        if !l.trim_start().starts_with(BOX_VERTICAL) {
            merge_wrapped_row(&mut out, &mut row);
        }
        if is_box_rule(l) {
            line.clear();
            // A rule between rows stays a table row (`|---|`), so the table is
            // one block; the first one separates the header.
            if in_table && l.contains(['┼', '╪', '╫', '╬', '┿', '╋']) {
                let cols = l.matches(['┼', '╪', '╫', '╬', '┿', '╋']).count() + 1;
                line = format!("|{}", "---|".repeat(cols));
            }
            out.push(line);
            continue;
        }
        if l.trim_start().starts_with(BOX_VERTICAL) {
            in_table = true;
            let cells: Vec<String> = l
                .trim()
                .trim_matches(BOX_VERTICAL)
                .split(BOX_VERTICAL)
                .map(|c| c.trim().to_string())
                .collect();
            row.push((out.len(), cells));
            out.push(l.replace(BOX_VERTICAL, "|"));
            continue;
        }
        if !l.trim().is_empty() {
            in_table = false;
        }
        if keycap(&line) {
            line = line.replace('🔟', "10.");
            let mut s = String::with_capacity(line.len());
            let chars: Vec<char> = line.chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let skip_vs = chars.get(k + 1) == Some(&'\u{FE0F}');
                let cap = k + 1 + usize::from(skip_vs);
                if c.is_ascii_digit() && chars.get(cap) == Some(&'\u{20E3}') {
                    s.push(c);
                    s.push('.');
                    k = cap + 1;
                } else {
                    s.push(c);
                    k += 1;
                }
            }
            line = s;
        }
        if lead_emoji(&line) {
            let t = line.trim_start();
            let pointer = t.starts_with(['👉', '➡']);
            line = t
                .trim_start_matches(|c: char| LEAD_EMOJI.contains(&c) || c == '\u{FE0F}')
                .trim_start()
                .to_string();
            line = marked_case(&line, pointer);
        }
        out.push(line);
    }
    merge_wrapped_row(&mut out, &mut row);
    Some(out.join("\n"))
}

/// A line a chat marked with an emoji, read for what it is: `别念：…` is a note
/// to the agent (bracketed, never said), and after a pointer (👉) a case with
/// what to do (`不是本人/打错了：“不好意思打扰您了。”直接挂`) is a branch
/// (`如果不是本人/打错了：…`) unless its label names a part of the step (说：, 记：).
fn marked_case(line: &str, pointer: bool) -> String {
    let Some((label, rest)) = line.split_once(['：', ':']) else {
        return line.to_string();
    };
    let label = label.trim();
    if ["别念", "不要念", "不用念", "勿念", "别说", "不要说"]
        .iter()
        .any(|k| label.starts_with(k))
    {
        return format!("（{}）", rest.trim());
    }
    const PARTS: &[&str] = &[
        "说", "记", "问", "答", "注", "备注", "注意", "提醒", "提示", "话术", "开场", "结束",
        "录入", "登记",
    ];
    let case = pointer
        && (1..=20).contains(&label.chars().count())
        && !label.contains(['“', '”', '"', '。', '，'])
        && !PARTS.iter().any(|k| label.starts_with(k))
        && !["如果", "若", "如", "当", "万一", "假如"]
            .iter()
            .any(|k| label.starts_with(k));
    if case {
        format!("如果{label}：{}", rest.trim())
    } else {
        line.to_string()
    }
}

/// A drawn table wraps a long cell over several physical lines of one row (what
/// pdftotext and Word's text export make of it): the row's cells joined, on the
/// row's first line, and its other lines rules, so line numbers stay those of
/// the document (`|---|` rows, as the rules between drawn rows). A row of one
/// line stays as it is.
fn merge_wrapped_row(out: &mut [String], row: &mut Vec<(usize, Vec<String>)>) {
    if row.len() > 1 {
        let width = row.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
        let mut cells = vec![String::new(); width];
        for (_, parts) in row.iter() {
            for (cell, part) in cells.iter_mut().zip(parts) {
                join_wrapped(cell, part);
            }
        }
        out[row[0].0] = format!("| {} |", cells.join(" | "));
        // A rule row keeps the table one block, as between drawn rows.
        for (i, _) in &row[1..] {
            out[*i] = format!("|{}", "---|".repeat(width));
        }
    }
    row.clear();
}

/// Appends a wrapped cell's next piece: Chinese runs on without a space, two
/// Latin words or numbers (苹果 / iPhone 15) keep one.
fn join_wrapped(cell: &mut String, part: &str) {
    if part.is_empty() {
        return;
    }
    let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if latin(cell.chars().last()) && latin(part.chars().next()) {
        cell.push(' ');
    }
    cell.push_str(part);
}

fn chat_time_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:\d{4}[-/年.]\d{1,2}[-/月.]\d{1,2}日?|\d{1,2}月\d{1,2}日|\d{1,2}/\d{1,2}|昨天|今天|前天|星期[一二三四五六日天]|周[一二三四五六日天])?\s*(?:上午|下午|晚上|早上)?\s*\d{1,2}:\d{2}(?::\d{2})?$",
        &C,
    )
}

/// A script pasted from a group chat (DingTalk, WeChat, Feishu): each message
/// starts with its sender's name on one line and the time on the next. The
/// first sender posted the script; the sender and time lines are furniture, and
/// the other members' replies ("收到👌", "👍") are no part of the script, so all of
/// them become blank lines. `None` when the text is no chat paste (fewer than two
/// messages).
pub(super) fn unchat(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let is_sender = |l: &str| {
        let t = l.trim();
        let n = t.chars().count();
        (1..=20).contains(&n)
            && !t.contains(['，', '。', '？', '！', '；', '：', ':', '“', '"'])
            && !t.starts_with(['#', '|', '-', '*', '>'])
    };
    let starts: Vec<usize> = (0..lines.len().saturating_sub(1))
        .filter(|&i| is_sender(lines[i]) && chat_time_re().is_match(lines[i + 1].trim()))
        .collect();
    if starts.len() < 2 {
        return unchat_time_first(&lines);
    }
    let author = lines[starts[0]].trim();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(lines.len());
        out[s].clear();
        out[s + 1].clear();
        if lines[s].trim() != author {
            for l in &mut out[s + 2..end] {
                l.clear();
            }
        }
    }
    Some(out.join("\n"))
}

/// The other way chats are pasted (WeChat on a phone): the time alone on a line,
/// then the sender, either as a `【主管-李姐】` line or before the text
/// (`王梅：收到👌`). The first sender posted the script; time and sender lines
/// are furniture, and the other members' messages, and the poster's replies to
/// one of them (`@刘建军 这种…`), become blank lines. `None` with fewer than three
/// time lines.
fn unchat_time_first(lines: &[&str]) -> Option<String> {
    static BRACKET: OnceLock<Regex> = OnceLock::new();
    static INLINE: OnceLock<Regex> = OnceLock::new();
    let bracket = re(r"^【([^】\s]{1,12})】\s*(.*)$", &BRACKET);
    let inline = re(r"^([^\s：:，。？！“”@]{1,8})[：:]\s*(.*)$", &INLINE);
    let is_time = |l: &str| chat_time_re().is_match(l.trim());
    if lines.iter().filter(|l| is_time(l)).count() < 3 {
        return None;
    }
    let prev = |i: usize| (0..i).rev().find(|&k| !lines[k].trim().is_empty());
    let next = |i: usize| (i + 1..lines.len()).find(|&k| !lines[k].trim().is_empty());
    let after_time = |i: usize| prev(i).is_some_and(|k| is_time(lines[k]));
    // A message's sender line: (sender, the text on the same line).
    let sender = |i: usize| -> Option<(String, String)> {
        let t = lines[i].trim();
        if let Some(c) = bracket.captures(t) {
            let by_time = after_time(i) || next(i).is_some_and(|k| is_time(lines[k]));
            return by_time.then(|| (c[1].to_string(), c[2].to_string()));
        }
        let c = inline.captures(t).filter(|_| after_time(i))?;
        Some((c[1].to_string(), c[2].to_string()))
    };
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut author: Option<String> = None;
    let mut keep = true;
    // The message's first line of text is still to come (after a `【…】` line).
    let mut opening_line = false;
    for (i, line) in out.iter_mut().enumerate() {
        if is_time(lines[i]) {
            line.clear();
            continue;
        }
        let t = lines[i].trim();
        if opening_line && !t.is_empty() {
            opening_line = false;
            if t.starts_with(['@', '＠']) {
                keep = t.contains("所有人");
                line.clear();
                continue;
            }
        }
        if let Some((who, text)) = sender(i) {
            let poster = author.get_or_insert_with(|| who.clone());
            let addressed = text.starts_with(['@', '＠']);
            // A reply to one member (@刘建军) is no part of the script either; a
            // message to everyone (@所有人 话术如下👇) only introduces it.
            keep = *poster == who && (!addressed || text.contains("所有人"));
            opening_line = text.is_empty();
            *line = if keep && !addressed {
                text
            } else {
                String::new()
            };
            continue;
        }
        if !keep {
            line.clear();
        }
    }
    author.map(|_| out.join("\n"))
}

/// A title that names when the call may end ("什么情况可以结束", "结束条件").
fn names_end_conditions(title: &str) -> bool {
    ["条件", "什么情况", "什么时候", "可以结束", "何时"]
        .iter()
        .any(|k| title.contains(k))
}

/// Line `i` opens a Q&A list: a question label with an answer label on the next
/// non-blank line, twice in a row.
fn starts_qa_pairs(lines: &[String], i: usize) -> bool {
    let next = |from: usize| (from..lines.len()).find(|&k| !lines[k].trim().is_empty());
    let pair_at = |k: usize| {
        q_re().is_match(lines[k].trim())
            && next(k + 1).is_some_and(|a| a_re().is_match(lines[a].trim()))
    };
    pair_at(i) && next(i + 1).and_then(|a| next(a + 1)).is_some_and(pair_at)
}

/// A rule line of a drawn table: box characters only, with at least one corner or
/// junction (a plain ─── line is a ruler for [`is_ruler`]).
fn is_box_rule(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty()
        && t.chars()
            .all(|c| BOX_CHARS.contains(c) || c.is_whitespace())
        && t.chars()
            .any(|c| "┌┐└┘├┤┬┴┼╔╗╚╝╠╣╦╩╬╒╕╘╛╞╡╤╧╪┏┓┗┛┣┫┳┻╋".contains(c))
}

/// `第 2 页 共 3 页`, `第2页/共3页`, `共3页 第2页`, `Page 2 of 3`, `- 2 -`: a page
/// number line. Bare numbers count only next to a form feed.
fn page_number_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^[-—–\s]*(?:第\s*\d{1,3}\s*页\s*[,，、/／]?\s*(?:共\s*\d{1,3}\s*页)?|共\s*\d{1,3}\s*页\s*[,，、/／]?\s*第\s*\d{1,3}\s*页|(?i:page)\s*\d{1,3}(?:\s*(?i:of|/)\s*\d{1,3})?|\d{1,3}\s*/\s*\d{1,3}\s*页)[-—–\s]*$",
        &C,
    )
}

/// `                 — 2 —`: a page number set in the middle or at the right of
/// the page (far indented, dashes both sides), which a numbered list never is.
fn centred_page_number(l: &str) -> bool {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"^\s{16,}[-—–]{1,2}\s*\d{1,3}\s*[-—–]{1,2}\s*$", &C).is_match(l)
}

fn bare_page_number_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"^[-—–\s]*\d{1,3}[-—–\s]*$", &C)
}

/// Display width in a monospaced export: CJK and full-width characters take two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            if (0x2E80..=0xA4CF).contains(&u)
                || (0xAC00..=0xD7A3).contains(&u)
                || (0xF900..=0xFAFF).contains(&u)
                || (0xFE30..=0xFE4F).contains(&u)
                || (0xFF00..=0xFF60).contains(&u)
                || (0xFFE0..=0xFFE6).contains(&u)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

/// A line compared across pages: trimmed, digits and spacing folded, so that a
/// header with the page number in it matches on every page.
fn furniture_key(l: &str) -> String {
    l.trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// Characters that end a sentence or a line to say: after one, a line break is the
/// author's, not the exporter's.
const LINE_ENDS: &[char] = &[
    '。', '？', '！', '；', '：', '…', '」', '”', '』', '）', ')', '】', '.', '?', '!', ';', ':',
    '"',
];

/// A line that starts something of its own (a numbered item, a bullet, a quoted
/// line, a Q&A label, a heading), so never the tail of a wrapped line.
fn starts_item(t: &str) -> bool {
    let s = strip_markup(t);
    s.starts_with([
        '-', '*', '•', '·', '#', '|', '「', '“', '『', '"', '【', '[', '>',
    ]) || step_re().is_match(&s)
        || plain_heading_re().is_match(&s)
        || s.starts_with("问：")
        || s.starts_with("答：")
        || s.starts_with(|c| CHAPTER_MARKERS.contains(&c) || BULLET_MARKERS.contains(&c))
}

/// More opening than closing quotes or brackets: the line stops inside a quote.
fn unclosed(t: &str) -> bool {
    let count = |cs: &[char]| t.chars().filter(|c| cs.contains(c)).count();
    count(&['「', '“', '『', '（', '(']) > count(&['」', '”', '』', '）', ')'])
}

/// Removes what a PDF export (pdftotext) puts on every page, the running header,
/// the footer, page numbers, form feeds, and rejoins the lines it broke at the page
/// width. `None` when the text does not look paginated. Removed and joined lines
/// become blank, so line numbers stay.
pub(super) fn unpaginate(text: &str) -> Option<String> {
    let feeds = text.contains('\u{c}');
    let raw: Vec<&str> = text.split('\n').collect();
    if !feeds && !raw.iter().any(|l| page_number_re().is_match(l)) {
        // Page numbers set in the middle of the line and nothing else of a PDF
        // export: a text the writer laid out by hand (a drawn table's rows are
        // as wide as a page and must not be rejoined), so only the numbers go.
        if raw.iter().any(|l| centred_page_number(l)) {
            let kept: Vec<&str> = raw
                .iter()
                .map(|l| if centred_page_number(l) { "" } else { l })
                .collect();
            return Some(kept.join("\n"));
        }
        return None;
    }
    // Pages: split at form feeds, or after page number lines.
    let mut page_of = Vec::with_capacity(raw.len());
    let mut lines: Vec<String> = Vec::with_capacity(raw.len());
    let mut page = 0usize;
    let mut furniture = vec![false; raw.len()];
    for (i, l) in raw.iter().enumerate() {
        let mut l = *l;
        if feeds {
            page += l.matches('\u{c}').count();
            if l.trim_end().ends_with('\u{c}') {
                // "…\f" ends this page; the rest of the line is on it.
                page_of.push(page - 1);
                lines.push(l.replace('\u{c}', ""));
                continue;
            }
            l = l.rsplit('\u{c}').next().unwrap_or(l);
        }
        let is_number = page_number_re().is_match(l)
            || centred_page_number(l)
            || (feeds && bare_page_number_re().is_match(l) && !l.trim().is_empty() && {
                let near = |j: usize| raw.get(j).is_some_and(|n| n.contains('\u{c}'));
                near(i) || near(i + 1) || (i > 0 && near(i - 1))
            });
        furniture[i] = is_number;
        page_of.push(page);
        lines.push(l.to_string());
        if !feeds && is_number {
            page += 1;
        }
    }
    let pages = page_of.last().map_or(0, |p| p + 1);
    // Running headers and footers: lines within the first or last three of a page
    // that recur at a page edge on at least two pages and half of them.
    if pages >= 2 {
        let mut seen: std::collections::HashMap<String, std::collections::BTreeSet<usize>> =
            Default::default();
        let mut edges: Vec<usize> = Vec::new();
        for p in 0..pages {
            let idx: Vec<usize> = (0..lines.len())
                .filter(|&i| page_of[i] == p && !furniture[i] && !lines[i].trim().is_empty())
                .collect();
            let k = idx.len().min(3);
            for &i in idx[..k].iter().chain(&idx[idx.len() - k..]) {
                seen.entry(furniture_key(&lines[i])).or_default().insert(p);
                edges.push(i);
            }
        }
        let need = 2.max(pages.div_ceil(2));
        for i in edges {
            if seen[&furniture_key(&lines[i])].len() >= need {
                furniture[i] = true;
            }
        }
    }
    for (i, l) in lines.iter_mut().enumerate() {
        if furniture[i] {
            l.clear();
        }
    }
    rejoin_wrapped(&mut lines, &furniture);
    Some(lines.join("\n"))
}

/// Joins a line the exporter broke at the page width to its continuation: a line
/// that does not end a sentence, is as wide as the page or stops inside a quote,
/// and is followed (possibly across a page break) by a line that starts nothing of
/// its own.
fn rejoin_wrapped(lines: &mut [String], furniture: &[bool]) {
    let page_width = lines
        .iter()
        .filter(|l| !is_ruler(l))
        .map(|l| width(l.trim_end()))
        .max()
        .unwrap_or(0);
    // Lines emptied by a join: passed over like removed page furniture.
    let mut joined = vec![false; lines.len()];
    let mut i = 0;
    // Width of the last physical line of lines[i].
    let mut tail = None;
    while i < lines.len() {
        let a = lines[i].trim_end().to_string();
        if a.trim().is_empty() || is_ruler(&a) || heading_re().is_match(&a) {
            i += 1;
            tail = None;
            continue;
        }
        let mut j = i + 1;
        let mut blank_gap = false;
        let mut crossed_page = false;
        while j < lines.len() && lines[j].trim().is_empty() {
            crossed_page |= furniture[j];
            blank_gap |= !furniture[j] && !joined[j];
            j += 1;
        }
        if j >= lines.len() || (blank_gap && !crossed_page) {
            i += 1;
            tail = None;
            continue;
        }
        let b = lines[j].trim().to_string();
        // Short documents have no page width to go by.
        let wide = page_width >= 40 && tail.unwrap_or_else(|| width(&a)) * 100 >= page_width * 85;
        if a.ends_with(LINE_ENDS) || starts_item(&b) || is_ruler(&b) || !(unclosed(&a) || wide) {
            i += 1;
            tail = None;
            continue;
        }
        let gap = a.ends_with(|c: char| c.is_ascii_alphanumeric())
            && b.starts_with(|c: char| c.is_ascii_alphanumeric());
        tail = Some(width(lines[j].trim_end()));
        lines[i] = format!("{a}{}{b}", if gap { " " } else { "" });
        lines[j].clear();
        joined[j] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::script::{FieldKind, Script, StepKind};

    /// A gym's renewal call pasted from a shared doc: steps grouped under (一)(二)
    /// and numbered on across the groups, branches as "会员反馈A：… → 回复：…" and
    /// "(1) 会员说…：…", {placeholders} in single braces, and 结束语 / 结束条件
    /// alone on their lines.
    #[test]
    fn grouped_steps_feedback_branches_and_bare_titles() {
        let doc = "健身房续卡回访话术

一、基本信息

坐席身份：动力健身前台“小动”。
通话目的：提醒会员年卡快到期，问清是否续卡。

二、通话流程

（一）开场

1. 确认会员本人
标准话术：您好，请问是{会员姓名}吗？我是动力健身的小动。
会员反馈A：不是本人 → 回复：打扰了，麻烦您转告一下，谢谢。

（二）续卡

2. 问是否续卡
标准话术：您的年卡{到期日}到期，今年还续吗？
记录：是否续卡
(1) 会员说要搬家了：没关系，我们全市门店通用。
(2) 会员说太贵：告诉会员老会员续卡打八折。

结束语
标准话术：好的，感谢您一直支持动力健身，再见！

结束条件
① 会员答复了是否续卡；
";
        let s = parse(doc);
        assert_eq!(s.steps.len(), 2, "{s}");
        assert_eq!(s.role, "动力健身前台“小动”。");
        assert!(s.placeholders.contains("会员姓名") && s.placeholders.contains("到期日"));
        let first = &s.steps[0];
        assert!(
            first
                .conditionals
                .iter()
                .any(|c| c.condition.contains("不是本人") && c.line.starts_with("打扰了")),
            "{:?}",
            first.conditionals
        );
        let second = &s.steps[1];
        assert!(second
            .conditionals
            .iter()
            .any(|c| c.condition.contains("搬家") && c.line.contains("门店通用")));
        assert!(
            second.directions.iter().any(|d| d.contains("八折")),
            "an instruction about the member is not said: {second:?}"
        );
        assert!(
            s.closing.iter().any(|c| c.starts_with("好的，感谢您")),
            "{:?}",
            s.closing
        );
        assert!(s
            .steps
            .iter()
            .all(|st| st.lines.iter().all(|l| !l.contains("结束"))));
        let filled = s
            .with_vars(
                &[("会员姓名", "吴磊"), ("到期日", "12月20日")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .expect("vars");
        assert!(
            filled.steps[0].lines[0].contains("吴磊"),
            "{:?}",
            filled.steps[0].lines
        );
        assert_eq!(filled.callee_name.as_deref(), Some("吴磊"));
    }

    fn parse(doc: &str) -> Script {
        let s = Script::parse(doc, "layout").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.spoken_annotations().is_empty(),
            "annotations spoken: {:?}\n{s}",
            s.spoken_annotations()
        );
        for l in std::iter::once(&s.opening)
            .chain(s.steps.iter().flat_map(|st| st.lines.iter()))
            .chain(s.closing.iter())
        {
            assert!(
                !l.contains(['=', '■', '●', '◆', '【', '>']) && !l.contains("---"),
                "decoration in a spoken line: {l}\n{s}"
            );
        }
        s
    }

    fn titles(s: &Script) -> Vec<&str> {
        s.steps.iter().map(|st| st.title.as_str()).collect()
    }

    fn questions(s: &Script) -> Vec<&str> {
        s.kb.iter().map(|q| q.question.as_str()).collect()
    }

    /// A call-robot export: titles between rulers, `>>> 节点N：` steps with
    /// 坐席话术：/需要记录：/若…： lines, 标准问N：/回答： pairs, 挂机条件/挂机话术.
    #[test]
    fn ruler_titles_and_robot_nodes() {
        let doc = "【话术名称】宠物医院疫苗提醒
=====
一、基础设置
=====
坐席身份：宠物医院前台小美。
通话目标：提醒主人带猫狗来打疫苗，约好时间。

=====
二、开场语
=====
“您好，我是宠物医院的小美，您家豆豆该打疫苗了，现在方便说两句吗？”

=====
三、话术流程
=====
>>> 节点1：预约时间
坐席话术：“您看这周哪天带豆豆过来？”
需要记录：到店日期
若对方说最近没空：“没关系，下周也可以，您看哪天方便？”
>>> 节点2：联系电话
坐席话术：“到店前一天发短信提醒您，发到哪个号码？”

=====
四、标准问答
=====
标准问1：疫苗多少钱？
回答：猫三联一百二十元一针。
标准问2：打完能洗澡吗？
标准答：一周内不要洗澡。

=====
五、挂机条件与挂机话术
=====
挂机条件：
1. 时间和电话都已登记；
挂机话术：
“好的，那到时候见，再见。”
";
        let s = parse(doc);
        // "坐席身份：" labels the role itself, as "通话目标：" labels the task.
        assert_eq!(s.role, "宠物医院前台小美。");
        assert_eq!(s.task, "提醒主人带猫狗来打疫苗，约好时间。");
        assert!(s.opening.starts_with("您好，我是宠物医院的小美"), "{s}");
        assert_eq!(titles(&s), ["节点1：预约时间", "节点2：联系电话"]);
        assert_eq!(s.steps[0].lines, ["您看这周哪天带豆豆过来？"]);
        assert_eq!(s.steps[0].collects, ["到店日期"]);
        assert_eq!(s.steps[0].conditionals.len(), 1);
        assert_eq!(s.steps[0].conditionals[0].condition, "若对方说最近没空");
        assert_eq!(s.steps[1].field, Some(FieldKind::Phone));
        assert_eq!(questions(&s), ["疫苗多少钱？", "打完能洗澡吗？"]);
        assert_eq!(s.kb[1].answer, "一周内不要洗澡。");
        assert_eq!(s.end_conditions, ["时间和电话都已登记；"]);
        assert_eq!(s.closing, ["好的，那到时候见，再见。"]);
        assert!(
            s.warnings.iter().all(|w| !w.contains("not recognised")),
            "{s}"
        );
    }

    /// A Word export: ■ chapter markers, 话术一｜ steps with 坐席： lines (quoted or
    /// not), 【Q01】/【A01】 pairs, 结束条件 and 结束语 chapters.
    #[test]
    fn chapter_markers_and_word_steps() {
        let doc = "燃气表更换通知 话术
■ 坐席人设
燃气公司客服小林。
■ 服务目标
约好换表的上门时间。
■ 开场白
坐席：“您好，这里是燃气公司，您家的燃气表到期要换了，现在方便吗？”
■ 标准话术
话术一｜预约上门
坐席：“师傅哪天上门比较方便？”
（对方已经说过时间的，直接进入话术二）
如果对方白天不在家：“师傅晚上七点前都能上门。”
话术二｜核对地址
坐席：上门地址是{{地址}}，对吗？
■ 知识库
【Q01】换表要钱吗？
【A01】到期换表免费。
【Q02】要停气多久？
【A02】大约半小时。
■ 结束条件
1. 上门时间已约好。
■ 结束语
“感谢您的配合，再见。”
";
        let s = parse(doc);
        assert_eq!(s.role, "燃气公司客服小林。");
        assert_eq!(s.task, "约好换表的上门时间。");
        assert!(s.opening.starts_with("您好，这里是燃气公司"), "{s}");
        assert_eq!(titles(&s), ["话术一｜预约上门", "话术二｜核对地址"]);
        assert_eq!(s.steps[0].lines, ["师傅哪天上门比较方便？"]);
        assert_eq!(s.steps[0].directions.len(), 1);
        assert_eq!(s.steps[0].conditionals[0].line, "师傅晚上七点前都能上门。");
        // An unquoted 坐席： line is said without its label.
        assert_eq!(s.steps[1].lines, ["上门地址是{{地址}}，对吗？"]);
        assert_eq!(s.steps[1].kind, StepKind::Confirm);
        assert_eq!(questions(&s), ["换表要钱吗？", "要停气多久？"]);
        assert_eq!(s.kb[0].answer, "到期换表免费。");
        assert_eq!(s.end_conditions, ["上门时间已约好。"]);
        assert_eq!(s.closing, ["感谢您的配合，再见。"]);
    }

    /// （一） titles, 步骤N / 第N步 steps, 话术：/标准话术： lines, 记录：, 问题N/答：.
    #[test]
    fn paren_titles_and_numbered_steps() {
        let doc = "（一）角色设定
图书馆的预约提醒员。
（二）核心任务
提醒读者来取预约的书。
（三）开场白
标准话术：“您好，这里是市图书馆，您预约的书到了。”
（四）流程
步骤1：确认读者
话术：“请问是{{姓名}}本人吗？”
第2步 取书时间
标准话术：“您哪天过来取书？”
记录：取书日期
如果读者说不要了：“好的，我帮您取消预约。”
（五）常见问题
问题1：能续借吗？
答：可以在小程序里续借。
（六）结束语
“祝您阅读愉快，再见。”
";
        let s = parse(doc);
        assert_eq!(s.role, "图书馆的预约提醒员。");
        assert_eq!(s.task, "提醒读者来取预约的书。");
        assert_eq!(s.opening, "您好，这里是市图书馆，您预约的书到了。");
        assert_eq!(titles(&s), ["确认读者", "取书时间"]);
        assert_eq!(s.steps[0].lines, ["请问是{{姓名}}本人吗？"]);
        assert_eq!(s.steps[1].lines, ["您哪天过来取书？"]);
        assert_eq!(s.steps[1].collects, ["取书日期"]);
        assert_eq!(s.steps[1].conditionals.len(), 1);
        assert_eq!(s.steps[1].field, Some(FieldKind::Time));
        assert_eq!(questions(&s), ["能续借吗？"]);
        assert_eq!(s.closing, ["祝您阅读愉快，再见。"]);
    }

    /// `一、` chapter titles with `1.` steps inside the flow: a numbered step whose
    /// title reads like a section (核对客户信息) stays a step, because chapters are
    /// numbered 一、 in this document.
    #[test]
    fn numbered_steps_inside_numbered_chapters() {
        let doc = "一、开场白
“您好，这里是物业服务中心。”
二、主流程
1. 核对客户信息
“请问您是几栋几单元的业主？”
2. 预约时间
“师傅明天上午上门可以吗？”
三、FAQ
Q1：物业费怎么交？
A1：在小程序里交。
";
        let s = parse(doc);
        assert_eq!(titles(&s), ["核对客户信息", "预约时间"]);
        assert_eq!(s.steps[0].field, Some(FieldKind::Address));
        assert_eq!(questions(&s), ["物业费怎么交？"]);
    }

    /// 【…】 titles and ◆ markers (a title only when it names a section), a
    /// 第一部分 chapter, and `>>> 1.` steps behind decoration.
    #[test]
    fn bracket_titles_bullet_markers_and_decorated_steps() {
        let doc = "第一部分 角色
快递网点客服。
◆ 开场白
“您好，您的快递到网点了。”
【通话步骤】
>>> 1. 取件时间
“您什么时候来取？”
◆ 注意：语气放轻松
● “好的，我给您留着。”
>>> 2. 结束
“谢谢，再见。”
【常见问答】
问：几点关门？
答：晚上八点。
";
        let s = parse(doc);
        assert_eq!(s.role, "快递网点客服。");
        assert_eq!(s.opening, "您好，您的快递到网点了。");
        assert_eq!(titles(&s), ["取件时间", "结束"]);
        // "◆ 注意：…" names no section: a direction of the step; "● “…”" a line.
        assert_eq!(
            s.steps[0].lines,
            ["您什么时候来取？", "好的，我给您留着。"],
            "{s}"
        );
        assert_eq!(s.steps[0].directions, ["注意：语气放轻松"], "{s}");
        assert_eq!(questions(&s), ["几点关门？"]);
    }

    /// A Markdown document with rulers between sections and robot-style steps
    /// under a Markdown steps heading.
    #[test]
    fn markdown_with_rulers_and_node_steps() {
        let doc = "# 回访话术

## 角色
售后回访专员。

## 开场白
“您好，我是售后回访专员，耽误您一分钟。”

---

## 话术流程
>>> 节点1：身份确认
坐席：“请问是{{姓名}}吗？”
>>> 节点2：满意度
坐席：“您对这次维修满意吗？”

***

## 结束语
“感谢您的反馈，再见。”
";
        let s = parse(doc);
        assert_eq!(s.opening, "您好，我是售后回访专员，耽误您一分钟。");
        // 身份确认 names the role section, but under the flow a labelled node is a step.
        assert_eq!(titles(&s), ["节点1：身份确认", "节点2：满意度"]);
        assert_eq!(s.steps[0].kind, StepKind::Convenience);
        assert_eq!(s.role, "售后回访专员。");
        assert_eq!(s.closing, ["感谢您的反馈，再见。"]);
    }

    /// A title underlined with a ruler (setext style) names its section.
    #[test]
    fn underlined_titles() {
        let doc = "开场白
======
“您好，这里是驾校。”

练车流程
------
1. 约练车时间
“您这周哪天来练车？”
";
        let s = parse(doc);
        assert_eq!(s.opening, "您好，这里是驾校。");
        assert_eq!(titles(&s), ["约练车时间"]);
    }

    /// A document whose flow title is there but whose steps are not labelled gets
    /// the error naming the flow's line; step labels outside any flow get a warning
    /// naming theirs.
    #[test]
    fn bad_layouts_name_the_line() {
        let doc = "=====
一、开场白
=====
“您好。”
=====
二、主流程
=====
先问对方是不是本人，再约时间。
";
        let err = Script::parse(doc, "bad.md").expect_err("no steps");
        let msg = err.to_string();
        assert!(msg.contains("bad.md") && msg.contains("line 6"), "{msg}");

        let doc = "■ 开场白
“您好。”
节点1：身份确认
坐席：“请问是本人吗？”
";
        let msg = Script::parse(doc, "stray.md")
            .expect_err("no steps section")
            .to_string();
        assert!(
            msg.contains("stray.md, line 3") && msg.contains("三、主流程"),
            "{msg}"
        );
        // With a numbered step found elsewhere, the stray label is a warning.
        let doc = "■ 开场白\n“您好。”\n节点1：身份确认\n1. 约时间\n“您哪天方便？”\n";
        let s = Script::parse(doc, "stray.md").expect("the numbered item is a step");
        assert!(s.warnings.iter().any(|w| w.starts_with("line 3:")), "{s}");
    }

    /// `N｜title` chapters (任务背景 is the role's section, not the task), ①
    /// steps with `→ 说：` lines and `→ 记下：` notes, `◎` questions with `口径：`
    /// answers, a `本次通话要办成的事：` task label, and a 收尾 chapter holding both
    /// the end conditions and the closing line.
    #[test]
    fn bar_chapters_circled_steps_and_caliber_answers() {
        let doc = "健身房会员到期续卡 · 外呼脚本
脚本编号：JS-01　　状态：已上线

1｜任务背景
坐席是力行健身的会籍顾问“小力”，在会员卡到期前一周打电话提醒续卡。
本次通话要办成的事：确认会员是否续卡，约好到店办卡的时间。

2 | 开场白
“您好，我是力行健身的小力，您的年卡下周就到期了，现在方便说两句吗？”

3｜通话环节

① 续卡意向
→ 说：“您今年还在我们这儿续卡吗？”
→ 记下：续卡意向（续／不续／再想想）
（会员表示要再想想时）“没问题，我先把续卡价格发到您手机上。”

② 到店时间
→ 说：“您看哪天过来办卡方便？”
→ 登记：到店日期

4｜常见问题答复口径

◎ 续卡有优惠吗？
口径：到期前续卡打九折，再送两节私教课。

◎ 卡能转给别人吗
答复口径：可以转给家人，带两个人的身份证到前台办理。

5｜收尾
收尾条件：
1. 续卡意向和到店时间都已登记；
2. 会员明确不续卡。
收尾话术：“好的，那到时候见，祝您锻炼愉快，再见。”
";
        let s = parse(doc);
        assert_eq!(
            s.role,
            "坐席是力行健身的会籍顾问“小力”，在会员卡到期前一周打电话提醒续卡。 本次通话要办成的事：确认会员是否续卡，约好到店办卡的时间。"
        );
        assert_eq!(s.task, "确认会员是否续卡，约好到店办卡的时间。");
        assert!(s.opening.starts_with("您好，我是力行健身的小力"), "{s}");
        assert_eq!(titles(&s), ["续卡意向", "到店时间"]);
        assert_eq!(s.steps[0].lines, ["您今年还在我们这儿续卡吗？"]);
        assert_eq!(s.steps[0].collects, ["续卡意向（续／不续／再想想）"]);
        assert_eq!(
            s.steps[0].conditionals[0].line,
            "没问题，我先把续卡价格发到您手机上。"
        );
        assert_eq!(s.steps[1].lines, ["您看哪天过来办卡方便？"]);
        assert_eq!(s.steps[1].collects, ["到店日期"]);
        assert_eq!(s.steps[1].field, Some(FieldKind::Time));
        assert_eq!(questions(&s), ["续卡有优惠吗？", "卡能转给别人吗"]);
        assert_eq!(s.kb[0].answer, "到期前续卡打九折，再送两节私教课。");
        assert_eq!(s.kb[1].answer, "可以转给家人，带两个人的身份证到前台办理。");
        assert_eq!(
            s.end_conditions,
            ["续卡意向和到店时间都已登记；", "会员明确不续卡。"]
        );
        assert_eq!(s.closing, ["好的，那到时候见，祝您锻炼愉快，再见。"]);
        assert!(
            s.warnings.iter().all(|w| !w.contains("not recognised")),
            "{s}"
        );
    }

    /// `N.` / `N、` chapters, a bare 场景说明 chapter as the role, a `坐席要做的事：`
    /// task label, `N）` steps, `●` questions with `回复：` answers, and one 结束语
    /// chapter with `结束条件：`, a numbered list, then labelled closing lines.
    #[test]
    fn numbered_chapters_scene_role_and_one_closing_chapter() {
        let doc = "社区图书馆 逾期还书提醒

1. 场景说明
本话术用于社区图书馆的逾期提醒，坐席是图书管理员小书。
坐席要做的事：提醒读者还书，约好还书的日子。

2、开场白
坐席：“您好，这里是社区图书馆，您借的书已经过了还书日期。”

3. 流程
1）还书时间
坐席：“您看哪天方便把书还回来？”
记下：还书日期
2）续借
坐席：“要是还没看完，也可以帮您续借两周，需要吗？”

4. 常见问题
● 逾期要罚钱吗？
回复：逾期一天一毛钱，一本书最多罚五元。

5. 结束语
结束条件：
1. 还书日期已约好；
2. 读者已续借。
已约还书：“好的，那我们到时候见，再见。”
已续借：“续借好了，祝您阅读愉快，再见。”
";
        let s = parse(doc);
        assert_eq!(
            s.role,
            "本话术用于社区图书馆的逾期提醒，坐席是图书管理员小书。 坐席要做的事：提醒读者还书，约好还书的日子。"
        );
        assert_eq!(s.task, "提醒读者还书，约好还书的日子。");
        assert_eq!(
            s.opening,
            "您好，这里是社区图书馆，您借的书已经过了还书日期。"
        );
        assert_eq!(titles(&s), ["还书时间", "续借"]);
        assert_eq!(s.steps[0].collects, ["还书日期"]);
        assert_eq!(questions(&s), ["逾期要罚钱吗？"]);
        assert_eq!(s.kb[0].answer, "逾期一天一毛钱，一本书最多罚五元。");
        assert_eq!(s.end_conditions, ["还书日期已约好；", "读者已续借。"]);
        assert_eq!(
            s.closing,
            [
                "好的，那我们到时候见，再见。",
                "续借好了，祝您阅读愉快，再见。"
            ]
        );
    }

    /// Inside a `N｜` steps chapter only another `N｜` title starts a section: a
    /// `N、` line that reads like a section (核对客户信息) stays a step.
    #[test]
    fn bar_chapters_keep_numbered_steps() {
        let doc = "1｜开场白
“您好，这里是自来水公司。”
2｜通话步骤
1、核对客户信息
“请问您是户主本人吗？”
2、抄表读数
“麻烦您看一下水表上的读数是多少？”
3｜常见问题
问：水费怎么交？
答：在公众号里交。
";
        let s = parse(doc);
        assert_eq!(titles(&s), ["核对客户信息", "抄表读数"]);
        assert_eq!(s.steps[1].field, Some(FieldKind::Number), "{s}");
        assert_eq!(questions(&s), ["水费怎么交？"]);
    }
    /// A bilingual Word export: `N. ` chapters, a callee-data chapter (被叫方信息)
    /// before the steps, `Step N / 第N步` labels with 坐席： lines and `登记 → …`
    /// records, `Q1　` questions with 答复： answers, and the callee's picture as the
    /// last chapter (被叫方画像).
    #[test]
    fn bilingual_step_labels_arrow_records_and_callee_data() {
        let doc = "城东驾校 科目二约考提醒

1. 背景
学员考试名额紧张，坐席在约考开放前一天打电话提醒。

2. 坐席身份与任务
身份：城东驾校教务“小东”，说话干脆。
任务：约好考试的场次，问清要不要加练。

3. 被叫方信息（系统带入）
学员姓名：{{姓名}}
报名编号：{{编号}}

4. 开场白
接通后说：“您好，我是城东驾校的小东，科目二约考明天开放了。”

5. 通话步骤

Step 1 / 第一步　约考场次
　坐席：“您想约上午场还是下午场？”
　登记 → 考试场次
　▷ 如对方表示这次不考：“好的，下次开放我再通知您。”（语气轻松）

Step 2 / 第二步　加练课时
　坐席：“考前想加练几节课？一共几节？”
　登记 → 加练节数

Step 3 / 第三步　核对学员证号
　坐席：“麻烦报一下学员证号，是两个字母加八位数字。”
　登记 → 学员证号

6. 问答库

Q1　考试要带什么？
答复：带身份证和学员证。

Q2　没考过怎么办？
答复：十天后可以补考。

7. 被叫方画像
· 上班族学员：白天忙，常说晚上再打。
· 大学生：时间多，关心能不能多练几次。
";
        let s = parse(doc);
        assert_eq!(s.role, "城东驾校教务“小东”，说话干脆。", "{s}");
        assert_eq!(s.task, "约好考试的场次，问清要不要加练。", "{s}");
        assert_eq!(
            s.profile,
            ["学员姓名：{{姓名}}", "报名编号：{{编号}}"],
            "{s}"
        );
        assert_eq!(titles(&s), ["约考场次", "加练课时", "核对学员证号"]);
        assert_eq!(s.steps[0].lines, ["您想约上午场还是下午场？"]);
        assert_eq!(s.steps[0].collects, ["考试场次"]);
        assert_eq!(s.steps[0].conditionals.len(), 1);
        assert_eq!(s.steps[0].directions, ["语气轻松"], "{s}");
        assert_eq!(s.steps[1].collects, ["加练节数"]);
        assert_eq!(s.steps[2].field, Some(FieldKind::Serial), "{s}");
        assert_eq!(questions(&s), ["考试要带什么？", "没考过怎么办？"]);
        assert_eq!(s.kb[0].answer, "带身份证和学员证。");
        assert_eq!(
            s.persona.behaviours,
            [
                "上班族学员：白天忙，常说晚上再打。",
                "大学生：时间多，关心能不能多练几次。"
            ],
            "{s}"
        );
        // The same document with `第N步` labels alone loads the same steps.
        let plain = doc
            .replace("Step 1 / ", "")
            .replace("Step 2 / ", "")
            .replace("Step 3 / ", "");
        let p = parse(&plain);
        assert_eq!(titles(&p), titles(&s));
    }

    /// A PDF export: a running header and a "第 N 页 共 N 页" footer on each page,
    /// form feeds, lines wrapped at the page width inside 「」 quotes and across a
    /// page break; the furniture is gone and the lines are whole again.
    #[test]
    fn pdf_page_furniture_and_wrapped_lines() {
        let doc = "青山社区卫生服务中心                                  内部使用
一、坐席角色
    青山社区卫生服务中心的随访坐席小青，语气亲切，称呼对方“大爷”“阿姨”，每句话都要说
得慢一点。
二、开场白
    「您好，我是青山社区卫生服务中心的小青，打电话来问问您最近血压量得怎么
样，现在方便说几句吗？」
三、随访流程
（一）第一步 血压情况
    1．话术：「您这几天早上量的血压，高压大概是多少？」
    2．记录：最近一次血压。
（二）第二步 用药情况

──────────────────────────────
                              第 1 页 共 2 页
\u{c}青山社区卫生服务中心                                  内部使用

    1．话术：「降压药您每天都按时吃吗？有没有哪天忘了吃或者自己停
了？」
    2．记录：是否按时服药（是／否）。
四、结束语
    「好的，您注意休息，按时吃药，再见。」

──────────────────────────────
                              第 2 页 共 2 页
\u{c}";
        let s = parse(doc);
        assert_eq!(
            s.role,
            "青山社区卫生服务中心的随访坐席小青，语气亲切，称呼对方“大爷”“阿姨”，每句话都要说得慢一点。",
            "{s}"
        );
        assert_eq!(
            s.opening,
            "您好，我是青山社区卫生服务中心的小青，打电话来问问您最近血压量得怎么样，现在方便说几句吗？",
            "{s}"
        );
        assert_eq!(titles(&s), ["血压情况", "用药情况"], "{s}");
        assert_eq!(
            s.steps[1].lines,
            ["降压药您每天都按时吃吗？有没有哪天忘了吃或者自己停了？"],
            "{s}"
        );
        assert_eq!(s.closing, ["好的，您注意休息，按时吃药，再见。"], "{s}");
        let all = s.to_string();
        assert!(!all.contains("内部使用") && !all.contains("页"), "{s}");
    }

    #[test]
    fn page_numbers_without_form_feeds() {
        let text = "第一行\nPage 1 of 2\n第二行\n- 2 -\n";
        let out = super::unpaginate(text).expect("paginated");
        // A bare "- 2 -" is a page number only next to a form feed.
        let kept: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(kept, ["第一行", "第二行", "- 2 -"], "{out}");
        assert!(!out.contains("Page"), "{out}");
        assert!(super::unpaginate("一、开场白\n「您好。」\n").is_none());
    }

    /// A script pasted from a group chat: sender and time lines, 【…】 titles
    /// with their text on the line, keycap step numbers, 说：/记： lines, ⚠️
    /// conditions, a reply from another member, and the Q&A in a later message
    /// with no title of its own.
    #[test]
    fn chat_paste_with_keycaps_and_untitled_qa() {
        let doc = "康宁眼镜店·客服群（8）

周敏（店长）
12月1日 10:02
@所有人 配镜回访的话术，明天开始用👇

【坐席是谁】康宁眼镜店的回访客服“小宁”，回访上周配了眼镜的顾客。
【要办成的事】问戴着合不合适，不合适的约时间回店调整。
【开头这么说】
“您好，我是康宁眼镜店的小宁，您上周在我们店配了眼镜，想问问您戴着怎么样？”

【流程】客户说过的不要再问
1️⃣ 问戴着舒不舒服
说：“戴着头晕或者夹耳朵吗？”
记：是否舒适
⚠️ 客户说头晕得厉害：“那您先别戴了，尽快回店复查一下度数。”
2️⃣ 约回店时间
说：“您看哪天方便回店调一下？”
记：回店时间
⚠️ 客户说哪里不对：问清是哪一项，改好再说一遍。

【挂电话前】“好的，不打扰您了，再见。”
【什么情况可以结束】约好时间；客户说戴着没问题。

刘洋
12月1日 10:05
收到👌

周敏（店长）
12月1日 10:09
常见问题👇
Q1 调眼镜要钱吗？
A：在本店配的眼镜终身免费调整。
Q2 镜片能换吗？
A：一个月内度数不合适可以免费换一次镜片。
";
        let s = parse(doc);
        assert_eq!(titles(&s), ["问戴着舒不舒服", "约回店时间"], "{s}");
        assert!(s.role.starts_with("康宁眼镜店的回访客服"), "{s}");
        assert!(s.task.starts_with("问戴着合不合适"), "{s}");
        assert!(s.opening.starts_with("您好，我是康宁眼镜店"), "{s}");
        assert_eq!(s.steps[0].lines, ["戴着头晕或者夹耳朵吗？"], "{s}");
        assert_eq!(s.steps[0].collects, ["是否舒适"], "{s}");
        assert_eq!(s.steps[0].conditionals.len(), 1, "{s}");
        assert_eq!(
            s.steps[0].conditionals[0].condition, "客户说头晕得厉害",
            "{s}"
        );
        // An instruction under a condition is a direction, not a line.
        assert!(s.steps[1].conditionals.is_empty(), "{s}");
        assert!(
            s.steps[1].directions.iter().any(|d| d.contains("问清")),
            "{s}"
        );
        assert_eq!(questions(&s), ["调眼镜要钱吗？", "镜片能换吗？"], "{s}");
        assert_eq!(s.closing, ["好的，不打扰您了，再见。"], "{s}");
        assert!(!s.closing.iter().any(|c| c.contains("收到")), "{s}");
        assert_eq!(s.end_conditions.len(), 1, "{s}");
    }

    /// A Q&A table drawn with box characters, headed 客户可能说 / 坐席应答.
    #[test]
    fn box_drawn_qa_table() {
        let doc = "一、开场白
“您好，我是康宁眼镜店的小宁，想问问您新眼镜戴着怎么样？”

二、通话流程
1. 舒适度
“戴着头晕吗？”

三、常见问题
┌────────────┬──────────────────────┐
│ 客户可能说   │ 坐席应答                │
├────────────┼──────────────────────┤
│ 调眼镜要钱吗？ │ 在本店配的眼镜终身免费调整。 │
├────────────┼──────────────────────┤
│ 镜片能换吗？  │ 一个月内可以免费换一次。     │
└────────────┴──────────────────────┘
";
        let s = parse(doc);
        assert_eq!(questions(&s), ["调眼镜要钱吗？", "镜片能换吗？"], "{s}");
        assert_eq!(s.kb[1].answer, "一个月内可以免费换一次。", "{s}");
    }

    /// A WeChat paste: the time alone on a line, then `【sender】` or `name：text`.
    /// Other members' messages and the poster's reply to one of them are dropped;
    /// 👉 cases are branches (words to say quoted) or directions; 别念 notes are
    /// never said; 什么时候挂 lists the end conditions; the callee paragraph is a
    /// profile, not a closing line.
    #[test]
    fn wechat_paste_with_time_lines_first() {
        let doc = "【店长-周哥】@所有人 宠物疫苗提醒电话，话术👇
09:10
安心宠物医院 疫苗到期提醒

①确认主人
说：“您好，请问是{姓名}吗？我是安心宠物医院的小安，您家狗狗的疫苗快到期了，现在方便说两句吗？”
👉 不方便：“好的，那我晚点再打给您。”
👉 打错了：道歉，直接挂
②约接种时间
说：“这周六上午给您留个号可以吗？”
📝 记：接种时间
09:12
小安：收到
09:12
阿杰：收到👌
09:15
【店长-周哥】
下面是常问的
❓问：疫苗多少钱？
💬答：狂犬疫苗一针80元。
❓问：打完能洗澡吗？
💬答：一周内先别洗澡。
09:16
阿杰：周哥，有人问能不能上门打咋说
09:17
【店长-周哥】
@阿杰 就说“这个我帮您问一下医生”
09:18
【店长-周哥】
什么时候挂：
1. 约好时间，说结束语挂
2. 主人说别再打了，道歉挂
结束语：“好的，周六见，再见！”

客户一般是养狗的年轻人，最关心价格和副作用，常见反应：嫌麻烦。
⚠️ 别念：不要跟主人保证疫苗一定有货
";
        let s = parse(doc);
        assert_eq!(titles(&s), ["确认主人", "约接种时间"], "{s}");
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert_eq!(s.steps[0].conditionals.len(), 1, "{s}");
        assert_eq!(s.steps[0].conditionals[0].condition, "如果不方便", "{s}");
        assert!(
            s.steps[0].directions.iter().any(|d| d.contains("道歉")),
            "{s}"
        );
        assert_eq!(s.steps[1].collects, ["接种时间"], "{s}");
        assert_eq!(questions(&s), ["疫苗多少钱？", "打完能洗澡吗？"], "{s}");
        assert_eq!(s.end_conditions.len(), 2, "{s}");
        assert_eq!(s.closing, ["好的，周六见，再见！"], "{s}");
        let text = s.to_string();
        for furniture in ["收到", "阿杰", "09:1", "上门打", "帮您问一下医生", "保证"]
        {
            assert!(!text.contains(furniture), "{furniture}: {s}");
        }
    }

    /// A table drawn with box characters whose cells wrap over several lines
    /// (pdftotext, Word's text export): one row per step, the wrapped pieces
    /// joined (Chinese without a space, Latin words with one), a record cell's
    /// cases kept as notes, and the Q&A table's wrapped answers whole.
    #[test]
    fn drawn_table_with_wrapped_cells() {
        let doc = "一、开场白

坐席说：“您好，这里是快修热线，请问您的电脑怎么了？”

二、接待流程（一个环节一个环节来）

┌──────────┬──────────────────────┬──────────────────────┐
│ 环节     │ 坐席话术             │ 需记录               │
├──────────┼──────────────────────┼──────────────────────┤
│ 1.问型号 │ “请问电脑是什么牌子 │ 记录：品牌型号。不知 │
│          │ 的，比如联想 Think   │ 道的：让他看机身背面 │
│          │ Pad这样的？”         │ 的标签。             │
├──────────┼──────────────────────┼──────────────────────┤
│ 2.留电话 │ “麻烦留一个联系电话 │ 联系电话             │
│          │ 。”                 │                      │
└──────────┴──────────────────────┴──────────────────────┘

                                                 — 1 —

三、常见问题

┌──────────────┬──────────────────────┐
│ 问题         │ 回答                 │
├──────────────┼──────────────────────┤
│ 检测要钱吗？ │ 检测免费，修不好不收 │
│              │ 任何费用。           │
└──────────────┴──────────────────────┘
";
        let s = parse(doc);
        assert_eq!(titles(&s), ["问型号", "留电话"], "{s}");
        assert_eq!(
            s.steps[0].lines,
            ["请问电脑是什么牌子的，比如联想 Think Pad这样的？"],
            "{s}"
        );
        assert_eq!(s.steps[0].collects, ["品牌型号"], "{s}");
        assert!(
            s.steps[0].directions.iter().any(|d| d.contains("机身背面")),
            "{s}"
        );
        assert_eq!(s.steps[1].lines, ["麻烦留一个联系电话。"], "{s}");
        assert_eq!(questions(&s), ["检测要钱吗？"], "{s}");
        assert_eq!(s.kb[0].answer, "检测免费，修不好不收任何费用。", "{s}");
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert!(!s.to_string().contains("— 1 —"), "{s}");
    }
}
