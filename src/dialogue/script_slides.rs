//! Slide-deck layer of the call-script loader: call centres train new agents with
//! a deck and hand the deck's text export around as the script. Each page
//! (`第4页`) has a title line, `•` bullets with `–` sub-bullets and the trainer's
//! `备注：` notes; one page per step (`步骤二 · 确认量房时间`), a Q&A page whose
//! questions are bullets with the answer as a sub-bullet, a page of when the call
//! ends, one describing the callee and one the agent's role.
//!
//! This layer rewrites such a deck as the Markdown the loader reads: step pages
//! become steps (a quoted `话术："…"` their line, `条件 → 处理` bullets their
//! branches, `要记录` their records, anything else a direction), the other pages
//! the sections their titles name, and the cover page is dropped. Notes are
//! never said; a note that tells the agent what to say to a kind of question
//! (`问到优惠这类问题，统一说"…"`) is a Q&A entry.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{classify_heading, re, Section};
use super::script_cards::as_condition;
use super::script_sop::{after_label, curly_quotes};

/// `第4页` / `幻灯片 4` / `Slide 4`: a page break of the export.
fn is_page_marker(t: &str) -> bool {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:第\s*[0-9]{1,3}\s*页|幻灯片\s*[0-9]{1,3}|[Ss]lide\s*[0-9]{1,3})\s*$",
        &C,
    )
    .is_match(t.trim())
}

/// `步骤二 · 确认量房时间` / `第三步：核对地址` / `环节1 开场`: a step page's title
/// without its label.
fn step_title(t: &str) -> Option<&str> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(
        r"^(?:步骤\s*[0-9一二三四五六七八九十]{1,3}|第\s*[0-9一二三四五六七八九十]{1,3}\s*(?:步|环节)|环节\s*[0-9一二三四五六七八九十]{1,3})\s*[·・:：、.．\-—\s]*(\S.*)$",
        &C,
    );
    Some(pattern.captures(t.trim())?.get(1)?.as_str().trim())
}

/// A bullet: its level (1 for `•`, 2 for `–` and the like) and its text.
fn bullet(line: &str) -> Option<(u8, &str)> {
    let t = line.trim_start();
    let indented = t.len() < line.len();
    let mut chars = t.chars();
    let mark = chars.next()?;
    let rest = chars.as_str().trim();
    match mark {
        '•' | '●' | '▪' | '■' | '◆' => Some((1, rest)),
        '–' | '—' | '◦' | '○' | '▫' => Some((2, rest)),
        '-' | '·' if indented => Some((2, rest)),
        '-' | '·' => Some((1, rest)),
        _ => None,
    }
}

/// A trainer's note on the page.
fn note(t: &str) -> Option<&str> {
    after_label(t, &["备注", "讲师备注", "演讲者备注", "讲者备注", "注"])
}

/// Labels of the words a step page gives the agent to say.
const SPEECH_LABELS: &[&str] = &[
    "开场白",
    "开场",
    "话术",
    "标准话术",
    "参考话术",
    "复述",
    "结束语",
    "结语",
    "说",
];

/// `话术："…"`: the label and the quoted words.
fn labelled_speech(t: &str) -> Option<(&str, String)> {
    let (label, rest) = t.split_once(['：', ':'])?;
    let label = label.trim();
    if !SPEECH_LABELS.contains(&label) {
        return None;
    }
    let rest = curly_quotes(rest.trim());
    let words = rest.strip_prefix('“')?;
    let words = words.strip_suffix('”').unwrap_or(words);
    (!words.contains(['“', '”'])).then(|| (label, words.trim().to_string()))
}

/// What follows `→` only says the call goes on (进入步骤三, 下一步).
fn goes_on(then: &str) -> bool {
    let t = then.trim().trim_end_matches(['。', '.']);
    t.chars().count() <= 8
        && ["进入", "下一步", "继续", "转到", "跳到"]
            .iter()
            .any(|w| t.starts_with(w))
}

/// Words that read back what was collected with blanks (`约 XX 平`, `××`) other
/// than a date and time: an instruction to read them back, not a line to say as
/// written. A blank date and time (`X 月 X 号 X 点`) the engine fills with the
/// call's time when it says the line.
fn has_blanks(words: &str) -> bool {
    static C: OnceLock<Regex> = OnceLock::new();
    let rest = super::text::time_blank_re().replace_all(words, "");
    re(r"(?:^|[^A-Za-z])[XxＸ×]{1,2}\s*[月号日点时平栋]|××|XX", &C).is_match(&rest)
}

/// `问到优惠、套餐价格这类问题，统一说"…"`: a kind of question and its answer.
fn question_rule(t: &str) -> Option<(String, String)> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(
        r"^(?:客户)?(?:问到|问起|问|提到|如果问)(.{2,30}?)(?:这类|之类|这些|等)(?:的)?问题[，,]?\s*(?:统一|一律|都)?(?:回答|说|回复|答)[：:]?\s*(.+)$",
        &C,
    );
    let c = pattern.captures(t)?;
    let topic = c.get(1)?.as_str().trim();
    let then = curly_quotes(c.get(2)?.as_str());
    let open = then.find('“')?;
    let close = open + then[open..].find('”')?;
    let answer = then[open + '“'.len_utf8()..close].trim();
    (!answer.is_empty()).then(|| (format!("{topic}？"), answer.to_string()))
}

/// One page: its title and the lines under it.
struct Page<'a> {
    title: &'a str,
    body: Vec<&'a str>,
}

fn pages<'a>(lines: &[&'a str]) -> Vec<Page<'a>> {
    let mut out: Vec<Page> = Vec::new();
    let mut open = false;
    for line in lines {
        let t = line.trim();
        if is_page_marker(t) {
            open = true;
            continue;
        }
        if t.is_empty() {
            continue;
        }
        if open {
            out.push(Page {
                title: t,
                body: Vec::new(),
            });
            open = false;
        } else if let Some(p) = out.last_mut() {
            p.body.push(line);
        }
    }
    out
}

/// Bullets of a page grouped under their level-1 bullet (or note, or plain line).
struct Item<'a> {
    text: &'a str,
    subs: Vec<&'a str>,
}

fn items<'a>(body: &[&'a str]) -> Vec<Item<'a>> {
    let mut out: Vec<Item> = Vec::new();
    for line in body {
        match bullet(line) {
            Some((2, text)) if !out.is_empty() => {
                if let Some(last) = out.last_mut() {
                    last.subs.push(text);
                }
            }
            Some((_, text)) => out.push(Item {
                text,
                subs: Vec::new(),
            }),
            None => out.push(Item {
                text: line.trim(),
                subs: Vec::new(),
            }),
        }
    }
    out
}

/// What the deck's pages add up to, gathered before the Markdown is written.
#[derive(Default)]
struct Deck {
    title: String,
    role: Vec<String>,
    task: Vec<String>,
    profile: Vec<String>,
    concerns: Vec<String>,
    behaviours: Vec<String>,
    steps: Vec<String>,
    kb: Vec<(String, String)>,
    ends: Vec<String>,
    closing: Vec<String>,
}

impl Deck {
    fn step_page(&mut self, title: &str, body: &[&str]) {
        let mut out = vec![format!("### 第{}步 {title}", self.steps.len() + 1)];
        let mut said = false;
        for item in items(body) {
            let text = item.text;
            if let Some(n) = note(text) {
                out.push(format!("- （备注：{n}）"));
                continue;
            }
            if let Some((label, words)) = labelled_speech(text) {
                if matches!(label, "结束语" | "结语") {
                    self.closing.push(words);
                } else if has_blanks(&words) {
                    out.push(format!("- （{label}：{words}）"));
                } else {
                    out.push(format!("- “{words}”"));
                    said = true;
                }
                continue;
            }
            if let Some((cond, then)) = text.split_once('→') {
                let (cond, then) = (cond.trim(), then.trim());
                if goes_on(then) && item.subs.is_empty() {
                    continue;
                }
                // The words to say sit in the branch or in one of its sub-bullets
                // ("新时间记下后告诉客户"…""); the other sub-bullets are notes.
                let words = told(then).or_else(|| item.subs.iter().find_map(|s| told(s)));
                // Without words to say, the branch is what the agent does: a
                // direction, never a line ("道歉，结束通话" is not said).
                match words {
                    Some(w) => out.push(format!(
                        "- {}：“{w}”（{}）",
                        as_condition(super::text::strip_parens(cond).trim()),
                        then.replace(['"', '“', '”'], "")
                    )),
                    None => out.push(format!("- （{cond} → {then}）")),
                }
                for s in &item.subs {
                    if told(s).is_none() {
                        out.push(format!("- （{s}）"));
                    }
                }
                continue;
            }
            let label = text.trim_end_matches(['：', ':']);
            if label.len() < text.len() && label.contains("记录") && !item.subs.is_empty() {
                let what: Vec<String> = item
                    .subs
                    .iter()
                    .map(|s| super::text::strip_parens(s).trim().to_string())
                    .collect();
                out.push(format!("- 记录：{}", what.join("、")));
                continue;
            }
            out.push(format!("- （{text}）"));
            for s in &item.subs {
                out.push(format!("  - （{s}）"));
            }
        }
        // A page whose only words are a read-back with blanks and the closing line
        // is the call's end, not a step.
        if said {
            self.steps.push(out.join("\n"));
        }
    }

    fn kb_page(&mut self, body: &[&str]) {
        for item in items(body) {
            if let Some(n) = note(item.text) {
                if let Some(qa) = question_rule(n) {
                    self.kb.push(qa);
                }
                continue;
            }
            if item.subs.is_empty() {
                continue;
            }
            self.kb.push((item.text.to_string(), item.subs.join("")));
        }
    }

    fn end_page(&mut self, body: &[&str]) {
        for item in items(body) {
            if note(item.text).is_some() {
                continue;
            }
            let t = curly_quotes(item.text);
            match labelled_speech(&t) {
                Some((_, words)) => self.closing.push(words),
                // The words a condition quotes (明确说"别再打了") are the caller's.
                None => self.ends.push(
                    t.replace("”“", "、")
                        .replace(['“', '”'], "")
                        .replace('→', "，"),
                ),
            }
        }
    }

    fn profile_page(&mut self, body: &[&str]) {
        for item in items(body) {
            if note(item.text).is_some() {
                continue;
            }
            let label = item.text.trim_end_matches(['：', ':']);
            let subs = item.subs.iter().map(|s| s.to_string());
            if item.subs.is_empty() {
                self.profile.push(item.text.to_string());
            } else if ["关心", "关注", "担心", "顾虑"]
                .iter()
                .any(|w| label.contains(w))
            {
                self.concerns.extend(subs);
            } else if ["反应", "表现", "特点", "习惯"]
                .iter()
                .any(|w| label.contains(w))
            {
                self.behaviours.extend(subs);
            } else {
                self.profile
                    .push(format!("{label}：{}", item.subs.join("；")));
            }
        }
    }

    fn role_page(&mut self, body: &[&str]) {
        for item in items(body) {
            if note(item.text).is_some() {
                continue;
            }
            let text = std::iter::once(item.text)
                .chain(item.subs.iter().copied())
                .collect::<Vec<_>>()
                .join("；");
            if ["目的", "任务", "目标"].iter().any(|w| text.starts_with(w)) {
                self.task.push(text);
            } else {
                self.role.push(text);
            }
        }
    }

    fn markdown(self) -> String {
        let mut out = vec![format!("# {}", self.title)];
        let mut section = |title: &str, lines: Vec<String>| {
            if !lines.is_empty() {
                out.push(format!("\n## {title}"));
                out.extend(lines);
            }
        };
        section("角色", self.role);
        section("核心任务", self.task);
        section("客户画像", self.profile);
        section("通话流程", self.steps);
        section(
            "常见问题",
            self.kb
                .into_iter()
                .map(|(q, a)| format!("问：{q}\n答：{a}"))
                .collect(),
        );
        section(
            "结束条件",
            self.ends.into_iter().map(|e| format!("- {e}")).collect(),
        );
        section(
            "结束语",
            self.closing
                .into_iter()
                .map(|c| format!("- “{c}”"))
                .collect(),
        );
        if !self.concerns.is_empty() || !self.behaviours.is_empty() {
            out.push("\n## 电话接听方".into());
            let mut sub = |title: &str, lines: Vec<String>| {
                if !lines.is_empty() {
                    out.push(format!("\n### {title}"));
                    out.extend(lines.into_iter().map(|l| format!("- {l}")));
                }
            };
            sub("顾虑", self.concerns);
            sub("行为表现", self.behaviours);
        }
        out.join("\n")
    }
}

/// `告诉客户"我跟周工确认后短信通知您"`: the words the agent is told to say.
fn told(t: &str) -> Option<String> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(
        r"(?:告诉|告知|回复|答复|说)(?:客户|对方|业主|他|她)?[：:]?\s*“([^”]{2,})”",
        &C,
    );
    let t = curly_quotes(t);
    Some(pattern.captures(&t)?.get(1)?.as_str().trim().to_string())
}

/// The document rewritten as Markdown when it is a slide deck's text export: at
/// least four page markers and a step page among the pages.
pub(super) fn slides_as_markdown(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.iter().filter(|l| is_page_marker(l)).count() < 4 {
        return None;
    }
    let pages = pages(&lines);
    if !pages.iter().any(|p| step_title(p.title).is_some()) {
        return None;
    }
    let mut deck = Deck {
        title: lines
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !is_page_marker(l))
            .unwrap_or("话术")
            .to_string(),
        ..Deck::default()
    };
    for page in &pages {
        if let Some(title) = step_title(page.title) {
            deck.step_page(title, &page.body);
            continue;
        }
        match classify_heading(page.title, false) {
            Section::Kb => deck.kb_page(&page.body),
            Section::End | Section::EndConditions | Section::Closing => deck.end_page(&page.body),
            Section::Profile => deck.profile_page(&page.body),
            Section::Role | Section::Task => deck.role_page(&page.body),
            // The cover, an agenda, anything else: no part of the call.
            _ => {}
        }
    }
    Some(deck.markdown())
}

#[cfg(test)]
mod tests {
    use super::super::script::Script;
    use super::*;

    #[test]
    fn page_parts_are_told_apart() {
        assert!(is_page_marker("第12页"));
        assert!(is_page_marker("Slide 3"));
        assert!(!is_page_marker("第12页的内容"));
        assert_eq!(step_title("步骤二 · 确认时间"), Some("确认时间"));
        assert_eq!(step_title("第三步：核对地址"), Some("核对地址"));
        assert_eq!(step_title("客户画像"), None);
        assert_eq!(
            bullet("• 对方方便 → 进入步骤二"),
            Some((1, "对方方便 → 进入步骤二"))
        );
        assert_eq!(bullet("  – 建筑面积"), Some((2, "建筑面积")));
        assert!(goes_on("进入步骤三"));
        assert!(!goes_on("问清楚什么时候方便，约好回电时间"));
        assert!(!has_blanks("给您确认一下：X 月 X 号 X 点"));
        assert!(has_blanks("面积约 XX 平，对吗"));
        assert!(!has_blanks("12 月 10 号下午两点"));
        assert_eq!(
            question_rule("问到优惠、套餐价格这类问题，统一说\"设计师上门时会介绍\"，不要报价。"),
            Some(("优惠、套餐价格？".into(), "设计师上门时会介绍".into()))
        );
        assert_eq!(
            told("新时间记下后告诉客户\"我确认后短信通知您\""),
            Some("我确认后短信通知您".into())
        );
    }

    /// A training deck: cover dropped, role and task, a step per page with its
    /// quoted line, branches and records, notes unsaid, a Q&A page with a note's
    /// rule as one more entry, the ending page's conditions and closing line.
    #[test]
    fn a_script_as_a_training_deck() {
        let doc = "洁净家政 回访外呼培训
第1页
保洁回访 · 话术培训
• 讲师：王老师
第2页
你的角色
• 你是洁净家政的回访专员\"小周\"
• 目的：了解客户对上次保洁的评价
第3页
步骤一 · 确认是本人
• 开场白：\"您好，请问是李女士吗？我是洁净家政的小周，想做个简短回访，您方便吗？\"
• 对方方便 → 进入步骤二
• 对方不方便 → 约好回电时间，礼貌结束
备注：一定要等对方说方便。
第4页
步骤二 · 服务评价
• 话术：\"上周四的保洁您还满意吗？\"
• 不满意 → 记下原因
  – 记完告诉客户\"我们会安排主管跟进\"
• 要记录：
  – 满意程度
第5页
步骤三 · 复述并结束
• 复述：\"好的，X 月 X 号的服务评价我记下了。\"
• 结束语：\"感谢您的支持，再见！\"
第6页
常见问题
• 可以换保洁阿姨吗？
  – 可以，下次预约时说明即可。
备注：问到价格这类问题，统一说\"以门店报价为准\"。
第7页
什么时候结束通话
• 评价记完 → 正常结束
• 客户说\"别再打了\" → 登记免打扰
";
        let s = Script::parse(doc, "deck").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert!(s.role.contains("小周"), "{s}");
        assert_eq!(s.steps.len(), 3, "{s}");
        assert_eq!(
            s.steps[2].lines,
            ["好的，X 月 X 号的服务评价我记下了。"],
            "{s}"
        );
        assert_eq!(
            s.steps[0].lines,
            ["您好，请问是李女士吗？我是洁净家政的小周，想做个简短回访，您方便吗？"],
            "{s}"
        );
        assert!(s.steps[0].conditionals.is_empty(), "{s}");
        assert_eq!(s.steps[1].lines, ["上周四的保洁您还满意吗？"], "{s}");
        assert_eq!(s.steps[1].conditionals.len(), 1, "{s}");
        assert_eq!(s.steps[1].conditionals[0].line, "我们会安排主管跟进", "{s}");
        assert!(!s.steps[1].collects.is_empty(), "{s}");
        assert_eq!(s.kb.len(), 2, "{s}");
        assert_eq!(s.kb[1].answer, "以门店报价为准", "{s}");
        assert_eq!(s.closing, ["感谢您的支持，再见！"], "{s}");
        assert_eq!(s.end_conditions.len(), 2, "{s}");
        assert!(!s.to_string().contains("讲师"), "{s}");
    }
}
