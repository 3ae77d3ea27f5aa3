//! Model-call layer of the call-script loader: many teams write a script as one
//! whole example call (示范对话), `坐席：…` and `客户：…` lines under stage titles
//! drawn as rules (`—— 第二环节 确认送货时间 ——`), and put what to record and
//! what to do in each case in a separate part, one block per stage
//! (`第二环节 确认送货时间` then `· …` bullets). The customer's lines are only
//! examples of what someone might say, and the agent's lines after them are
//! acknowledgements of those examples.
//!
//! This layer rewrites such a document as the Markdown the loader reads: each
//! stage becomes one step holding the agent's lines before the first customer
//! line and that stage's bullets; the opening and closing of the example call
//! become the opening and closing sections; other parts (`第一部分 外呼说明`,
//! `第四部分 客户可能会问`) become sections, with `问题？→ 回答` lines as Q&A.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{classify_heading, re, Section};
use super::script_cards::as_condition;
use super::script_sop::{curly_quotes, told_words};
use super::text::parse_number;

/// Speaker labels of the agent's lines.
const AGENT_LABELS: &[&str] = &[
    "坐席",
    "客服",
    "话务员",
    "专员",
    "销售",
    "顾问",
    "外呼员",
    "我方",
    "AI",
    "机器人",
];

/// Speaker labels of the other side's lines.
const CUSTOMER_LABELS: &[&str] = &[
    "客户",
    "客人",
    "顾客",
    "用户",
    "对方",
    "来电人",
    "学员",
    "家长",
    "患者",
    "业主",
    "车主",
];

/// Marks that open a bullet line.
const BULLETS: &[char] = &['·', '•', '●', '○', '■', '◆', '▪', '-', '*', '+'];

/// Arrows between a question the customer may ask and its answer.
const ARROWS: &[&str] = &["→", "->", "=>", "⇒", "➡"];

/// One line of the document, as this layer sees it.
#[derive(Debug, Clone, PartialEq)]
enum Line {
    /// `第二部分 示范对话`: a part of the document, with its title.
    Part(String),
    /// `—— 第二环节 确认送货时间 ——` or `第二环节 确认送货时间`: a stage.
    Stage {
        number: u32,
        title: String,
    },
    /// `坐席：…`
    Agent(String),
    /// `客户：…`
    Customer,
    /// `开场白` alone on its line.
    Opening,
    /// `结束` / `结束语` alone on its line inside the example call.
    Ending,
    Other,
}

fn part_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^第\s*[一二三四五六七八九十0-9]{1,3}\s*(?:部分|章|篇)\s*[:：、.．]?\s*(.*)$",
        &C,
    )
}

fn stage_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:第\s*([一二三四五六七八九十0-9]{1,3})\s*(?:环节|步|阶段)|(?:环节|步骤|阶段)\s*([一二三四五六七八九十0-9]{1,3}))\s*[:：、.．|｜]?\s*(.*)$",
        &C,
    )
}

/// Rule characters drawn around a stage title.
fn is_rule_char(c: char) -> bool {
    matches!(
        c,
        '—' | '-'
            | '─'
            | '━'
            | '='
            | '＝'
            | '~'
            | '～'
            | '【'
            | '】'
            | '['
            | ']'
            | '*'
            | '#'
            | ' '
    )
}

/// "二" / "十二" / "12": a stage's number, all of it.
fn numeral(s: &str) -> Option<u32> {
    let c: Vec<char> = s.chars().collect();
    parse_number(&c)
        .filter(|&(_, used)| used == c.len())
        .map(|(n, _)| n)
}

/// `坐席：…` / `客户：…`: the speaker's side and the words.
fn speaker(t: &str) -> Option<(bool, &str)> {
    let (label, rest) = t.split_once(['：', ':'])?;
    let label = label.trim();
    if label.chars().count() > 6 {
        return None;
    }
    let words = rest.trim();
    // "客户" or "客户A", never a field such as "学员姓名".
    let is = |l: &&str| {
        label
            .strip_prefix(*l)
            .is_some_and(|r| r.chars().count() <= 1 && r.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    if AGENT_LABELS.iter().any(is) {
        Some((true, words))
    } else if CUSTOMER_LABELS.iter().any(is) {
        Some((false, words))
    } else {
        None
    }
}

fn classify(line: &str) -> Line {
    let t = line.trim();
    if let Some(c) = part_re().captures(t) {
        return Line::Part(c[1].trim().to_string());
    }
    let bare = t.trim_matches(is_rule_char);
    if let Some(c) = stage_re().captures(bare) {
        let number = c
            .get(1)
            .or_else(|| c.get(2))
            .and_then(|m| numeral(m.as_str()));
        let title = c[3].trim().trim_matches(is_rule_char).to_string();
        if let Some(number) = number {
            if title.chars().count() <= 20 && !title.contains(['：', ':', '。']) {
                return Line::Stage { number, title };
            }
        }
    }
    if let Some((agent, words)) = speaker(t) {
        return if agent {
            Line::Agent(words.to_string())
        } else {
            Line::Customer
        };
    }
    match bare {
        "开场白" | "开场" | "开头" => Line::Opening,
        "结束" | "结束语" | "结尾" | "收尾" => Line::Ending,
        _ => Line::Other,
    }
}

/// One stage, gathered from the example call and from its block of points.
struct Stage {
    number: u32,
    title: String,
    said: Vec<String>,
    heard_customer: bool,
    points: Vec<String>,
}

/// Where the lines under the current title go.
enum Into {
    Nowhere,
    Stage(usize),
    Opening,
    Ending,
    /// A part of the document kept as a section, of this kind.
    Section(Section),
}

/// "发票怎么开？→ 在订单页面申请": a question and its answer on one line.
fn question_answer(t: &str) -> Option<(&str, &str)> {
    ARROWS.iter().find_map(|a| {
        let (q, ans) = t.split_once(a)?;
        let (q, ans) = (q.trim(), ans.trim());
        (!q.is_empty() && !ans.is_empty()).then_some((q, ans))
    })
}

fn unbullet(t: &str) -> &str {
    t.trim_start_matches(BULLETS).trim()
}

/// Labels that open a note to the agent, not a condition.
const NOTE_LABELS: &[&str] = &[
    "记录", "登记", "注意", "备注", "提醒", "说明", "要求", "原则", "禁止", "话术", "口径",
];

/// Words that open a caller's situation inside a sentence of a point.
const SITUATION_OPENERS: &[&str] = &["客户", "对方", "如果", "若", "要是", "万一", "当"];

/// The sentences of `t`, split after `。；` outside quotes.
fn sentences(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in t.chars() {
        cur.push(c);
        match c {
            '“' | '「' => quoted = true,
            '”' | '」' => quoted = false,
            '"' => quoted = !quoted,
            '。' | '；' | ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => {}
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A stage's point as the loader's step lines. The example call holds what is
/// said, so a point is never speech: "接电话的不是本人：…" and "客户要求晚上送的，
/// 告知“…”" are branches, "记录：…" a field, anything else a note.
fn point_lines(p: &str) -> Vec<String> {
    let p = &curly_quotes(p);
    let then = |t: &str| told_words(t.trim()).unwrap_or_else(|| t.trim().to_string());
    // A label's colon, not a clock's ("9:00-12:00").
    let colon = p.char_indices().find(|&(i, c)| {
        c == '：'
            || (c == ':'
                && !p[..i].ends_with(|d: char| d.is_ascii_digit())
                && !p[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
    });
    if let Some((label, rest)) = colon.map(|(i, c)| (&p[..i], &p[i + c.len_utf8()..])) {
        let label = label.trim();
        let quoted = label.contains(['“', '"', '「']);
        if !quoted && NOTE_LABELS.iter().any(|n| label.starts_with(n)) {
            return if label.starts_with("记录") || label.starts_with("登记") {
                vec![format!("- {p}")]
            } else {
                vec![format!("- （{p}）")]
            };
        }
        if !quoted && label.chars().count() <= 30 && !rest.trim().is_empty() {
            return vec![format!("- {}：{}", as_condition(label), then(rest))];
        }
    }
    sentences(p)
        .into_iter()
        .map(|s| {
            let situation = SITUATION_OPENERS.iter().any(|o| s.starts_with(o));
            match s.split_once(['，', ',']) {
                Some((c, rest))
                    if situation && c.chars().count() <= 30 && !c.contains(['“', '"', '「']) =>
                {
                    format!("- {}：{}", as_condition(c.trim()), then(rest))
                }
                _ => format!("- （{s}）"),
            }
        })
        .collect()
}

/// The document rewritten as Markdown when it is written as an example call: at
/// least three stage titles and three agent lines with customer lines between.
pub(super) fn model_call_as_markdown(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let kinds: Vec<Line> = lines.iter().map(|l| classify(l)).collect();
    let count = |f: fn(&Line) -> bool| kinds.iter().filter(|k| f(k)).count();
    if count(|k| matches!(k, Line::Stage { .. })) < 3
        || count(|k| matches!(k, Line::Agent(_))) < 3
        || count(|k| matches!(k, Line::Customer)) < 2
    {
        return None;
    }
    // A part holding stages or the example call is the flow: its title goes.
    let mut flow_part = vec![false; lines.len()];
    let mut start = 0;
    for k in 0..=kinds.len() {
        if k == kinds.len() || matches!(kinds[k], Line::Part(_)) {
            let flow = kinds[start..k].iter().any(|l| {
                matches!(
                    l,
                    Line::Stage { .. } | Line::Agent(_) | Line::Opening | Line::Ending
                )
            });
            flow_part[start..k].iter_mut().for_each(|f| *f = flow);
            start = k;
        }
    }
    let has_closing_part = kinds.iter().any(|k| {
        matches!(k, Line::Part(t) if matches!(classify_heading(t, false), Section::Closing | Section::End))
    });
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 16);
    let mut stages: Vec<Stage> = Vec::new();
    let mut steps_at: Option<usize> = None;
    let mut ending: Vec<String> = Vec::new();
    let mut into = Into::Nowhere;
    let mut titled = false;
    for (k, (line, kind)) in lines.iter().zip(&kinds).enumerate() {
        let t = line.trim();
        match kind {
            Line::Part(title) => {
                out.push(if flow_part[k] {
                    String::new()
                } else {
                    format!("## {title}")
                });
                into = if flow_part[k] {
                    Into::Nowhere
                } else {
                    Into::Section(classify_heading(title, false))
                };
            }
            Line::Stage { number, title } => {
                let i = match stages.iter().position(|s| s.number == *number) {
                    Some(i) => i,
                    None => {
                        stages.push(Stage {
                            number: *number,
                            title: title.clone(),
                            said: Vec::new(),
                            heard_customer: false,
                            points: Vec::new(),
                        });
                        stages.len() - 1
                    }
                };
                // The steps stand where their points are: the first stage seen a
                // second time, or else the first stage.
                if steps_at.is_none() && (stages[i].heard_customer || !stages[i].said.is_empty()) {
                    steps_at = Some(out.len());
                }
                into = Into::Stage(i);
                out.push(String::new());
            }
            Line::Opening if flow_part[k] => {
                out.push("## 开场白".into());
                into = Into::Opening;
            }
            Line::Ending if flow_part[k] => {
                out.push(String::new());
                into = Into::Ending;
            }
            Line::Agent(words) => {
                match into {
                    Into::Opening => out.push(format!("- “{words}”")),
                    Into::Stage(i) => {
                        if !stages[i].heard_customer {
                            stages[i].said.push(words.clone());
                        }
                        out.push(String::new());
                    }
                    Into::Ending => {
                        ending.push(words.clone());
                        out.push(String::new());
                    }
                    _ => out.push(line.to_string()),
                }
                continue;
            }
            Line::Customer => {
                if let Into::Stage(i) = into {
                    stages[i].heard_customer = true;
                }
                out.push(String::new());
            }
            _ if t.is_empty() => out.push(String::new()),
            _ => match into {
                Into::Stage(i) => {
                    stages[i].points.push(unbullet(t).to_string());
                    out.push(String::new());
                }
                // Notes about the example itself ("以下是一通示范外呼…").
                Into::Nowhere | Into::Opening | Into::Ending if flow_part[k] => {
                    out.push(String::new())
                }
                Into::Section(Section::Kb) => match question_answer(unbullet(t)) {
                    Some((q, a)) => out.push(format!("问：{q} 答：{a}")),
                    None => out.push(line.to_string()),
                },
                _ if !titled && out.iter().all(|l| l.trim().is_empty()) => {
                    titled = true;
                    out.push(format!("# {t}"));
                }
                _ if t.starts_with(BULLETS) => out.push(format!("- {}", unbullet(t))),
                _ => out.push(line.to_string()),
            },
        }
    }
    let mut steps = vec!["## 通话流程".to_string()];
    for s in &stages {
        steps.push(format!("### 第{}步 {}", s.number, s.title));
        steps.extend(s.said.iter().map(|w| format!("- “{w}”")));
        steps.extend(s.points.iter().flat_map(|p| point_lines(p)));
        steps.push(String::new());
    }
    if !has_closing_part && !ending.is_empty() {
        out.push("## 结束语".into());
        out.extend(ending.iter().map(|w| format!("- “{w}”")));
    }
    let at = steps_at.unwrap_or(out.len()).min(out.len());
    out.splice(at..at, steps);
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::super::script::Script;
    use super::*;

    #[test]
    fn lines_are_told_apart() {
        assert_eq!(
            classify("—— 第二环节 确认送货时间 ——"),
            Line::Stage {
                number: 2,
                title: "确认送货时间".into()
            }
        );
        assert_eq!(
            classify("第十二环节 复述"),
            Line::Stage {
                number: 12,
                title: "复述".into()
            }
        );
        assert_eq!(
            classify("第三部分 各环节要点"),
            Line::Part("各环节要点".into())
        );
        assert_eq!(classify("坐席：您好"), Line::Agent("您好".into()));
        assert_eq!(classify("客户：是我，你说吧。"), Line::Customer);
        assert_eq!(classify("· 记录：是否本人接听。"), Line::Other);
    }

    /// An example call with stages, then each stage's points, a Q&A with arrows
    /// and a closing part: the customer's example lines and the agent's
    /// acknowledgements of them are never said.
    #[test]
    fn a_script_written_as_an_example_call() {
        let doc = "青禾眼镜 取镜提醒 示范对话
第一部分 外呼说明
外呼身份：青禾眼镜门店客服“小禾”
外呼目的：通知客户新配的眼镜已经到店，约取镜时间

第二部分 示范对话
开场白
坐席：您好，我是青禾眼镜的小禾，请问是${客户姓名}吗？
—— 第一环节 核实身份 ——
坐席：您配的眼镜已经到店了，现在方便说两句吗？
客户：方便，你说。
—— 第二环节 约取镜时间 ——
坐席：您看哪天过来取？门店每天10点到晚上9点营业。
客户：周六下午吧。
坐席：好的，给您记周六下午。
—— 第三环节 确认 ——
坐席：那就周六下午见，到店报手机号就行，可以吗？
客户：可以。
结束
坐席：好的，祝您生活愉快，再见。

第三部分 各环节要点
第一环节 核实身份
· 接电话的不是本人：请对方转告，结束通话。
第二环节 约取镜时间
· 记录：取镜时间。
第三环节 确认
· 客户要别人代取：告知带上取镜单即可。

第四部分 客户可能会问
· 取镜要带什么？→ 带上取镜单，或者报手机号也可以。
· 不合适能调吗？→ 可以，镜架免费调整。
";
        let s = Script::parse(doc, "model-call").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert_eq!(
            s.opening, "您好，我是青禾眼镜的小禾，请问是${客户姓名}吗？",
            "{s}"
        );
        assert_eq!(s.steps.len(), 3, "{s}");
        assert_eq!(
            s.steps[0].lines,
            ["您配的眼镜已经到店了，现在方便说两句吗？"],
            "{s}"
        );
        assert_eq!(
            s.steps[1].lines,
            ["您看哪天过来取？门店每天10点到晚上9点营业。"],
            "{s}"
        );
        assert_eq!(s.steps[1].collects, ["取镜时间。"], "{s}");
        assert!(!s.steps[0].conditionals.is_empty(), "{s}");
        assert_eq!(s.kb.len(), 2, "{s}");
        assert_eq!(s.kb[1].answer, "可以，镜架免费调整。", "{s}");
        assert_eq!(s.closing, ["好的，祝您生活愉快，再见。"], "{s}");
        let text = s.to_string();
        assert!(!text.contains("周六下午吧"), "{s}");
        assert!(!text.contains("给您记周六下午"), "{s}");
    }
}
