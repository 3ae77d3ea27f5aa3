//! Procedure-document layer of the call-script loader: companies keep hotline
//! scripts as standard operating procedures (作业指导书), with a document-control
//! header (文件编号, 版本, 审核), decimal clauses (`4 作业流程`, `4.2 了解虫害情况`),
//! `标准话术：` lines, `异常处理：` with `(a)(b)(c)` cases, `注：` notes, a
//! `5.1 问：… 答：…` Q&A and clauses that are no part of a call (适用范围, 附则
//! with a revision table).
//!
//! This layer rewrites such a document as the Markdown the loader reads: top
//! clauses become sections (those the loader has no use for are dropped with
//! their body), the sub-clauses of the procedure become steps (an opening clause
//! the opening), `标准话术` the step's line, lettered cases its branches and
//! notes directions.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{classify_heading, re, Section};
use super::script_cards::as_condition;

/// `4 作业流程` / `4. 作业流程` / `第4条 作业流程`: a top clause and its title.
fn top_clause(t: &str) -> Option<&str> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(
        r"^(?:第\s*)?[0-9]{1,2}\s*(?:条|章)?[.．、]?\s+(\S.{0,15})$",
        &C,
    );
    let c = pattern.captures(t.trim())?;
    let title = c.get(1)?.as_str().trim();
    // A title, not a sentence or a number ("1 目的", not "1 本规范由…负责。").
    (!title.contains(['。', '，', '：', ':', '；'])
        && !title.starts_with(|c: char| c.is_ascii_digit()))
    .then_some(title)
}

/// `4.2 了解虫害情况` / `4.2.1 …`: a sub-clause, its depth and what follows the
/// number.
fn sub_clause(t: &str) -> Option<(usize, &str)> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(r"^[0-9]{1,2}((?:\.[0-9]{1,2}){1,3})[.．、]?\s*(\S.*)$", &C);
    let c = pattern.captures(t.trim())?;
    let depth = c.get(1)?.as_str().matches('.').count();
    Some((depth, c.get(2)?.as_str().trim()))
}

/// `(a) …` / `（b）…` / `a) …` / `① …`: a lettered case and its text.
fn lettered(t: &str) -> Option<&str> {
    static C: OnceLock<Regex> = OnceLock::new();
    let pattern = re(
        r"^(?:[（(][a-zA-Z0-9一二三四五六七八九十]{1,2}[)）]|[a-zA-Z][)）.．]|[①-⑳])\s*(\S.*)$",
        &C,
    );
    Some(pattern.captures(t.trim())?.get(1)?.as_str())
}

/// The text after the first of `labels` that starts `t` and its colon
/// (`标准话术：…`, `备注：…`).
pub(super) fn after_label<'a>(t: &'a str, labels: &[&str]) -> Option<&'a str> {
    labels
        .iter()
        .find_map(|l| t.strip_prefix(l))
        .and_then(|r| r.trim_start().strip_prefix(['：', ':']))
        .map(str::trim)
}

/// `标准话术：…` and its kin: the line the agent says.
fn speech(t: &str) -> Option<&str> {
    after_label(t, &["标准话术", "参考话术", "推荐话术", "话术", "标准用语"])
}

/// A note to the agent (`注：…`, `注意：…`, `说明：…`).
fn is_note(t: &str) -> bool {
    [
        "注：",
        "注:",
        "注意：",
        "注意:",
        "说明：",
        "备注：",
        "提示：",
    ]
    .iter()
    .any(|l| t.starts_with(l))
}

/// Straight double quotes, paired, as the curly quotes the loader reads as speech.
pub(super) fn curly_quotes(t: &str) -> String {
    let mut open = false;
    t.chars()
        .map(|c| match c {
            '"' => {
                open = !open;
                if open {
                    '“'
                } else {
                    '”'
                }
            }
            c => c,
        })
        .collect()
}

/// `告知“…”本次不预约。`: the words the agent is told to say, quoted, with what it
/// is told to do around them as an aside.
pub(super) fn told_words(then: &str) -> Option<String> {
    let open = then.find('“')?;
    let close = open + then[open..].find('”')?;
    let before = then[..open].trim_end_matches(['：', ':']).trim();
    let after = then[close + '”'.len_utf8()..]
        .trim()
        .trim_start_matches(['，', '。', ',', '.'])
        .trim();
    if before.chars().count() > 6 || !TELL_WORDS.iter().any(|w| before.ends_with(w)) {
        return None;
    }
    let words = &then[open..close + '”'.len_utf8()];
    Some(if after.is_empty() {
        words.to_string()
    } else {
        format!(
            "{words}（{}）",
            after.trim_end_matches('。').replace(['“', '”'], "")
        )
    })
}

/// Verbs that hand the agent the words to say.
const TELL_WORDS: &[&str] = &["告知", "告诉", "回复", "答复", "说", "提醒", "解释"];

/// `(a) 客户只有座机：记录座机号码…`: the case as the loader's condition line. An
/// aside in the condition ("替家人预约（如子女替父母预约）") only illustrates it.
fn case_line(t: &str) -> String {
    let t = curly_quotes(t);
    match t.split_once('：') {
        Some((cond, then))
            if cond.chars().count() <= 60 && !cond.contains(['“', '"']) && !then.is_empty() =>
        {
            let cond = super::text::strip_parens(cond);
            let cond = cond.trim();
            let then = told_words(then).unwrap_or_else(|| then.to_string());
            format!("- {}：{then}", as_condition(cond))
        }
        _ => format!("- （{t}）"),
    }
}

/// Who a role sub-clause describes: the agent…
const AGENT_LABELS: &[&str] = &["坐席", "客服", "话务员", "专员", "机器人", "智能"];
/// …or the caller.
const CALLER_LABELS: &[&str] = &["客户", "来电", "用户", "顾客", "业主", "患者", "学员"];

/// Where the lines under the current clause go.
#[derive(Clone, Copy, PartialEq)]
enum In {
    /// The document-control header, or a clause the loader has no use for.
    Dropped,
    Section(Section),
    Opening,
    Step,
}

/// The document rewritten as Markdown when it is a procedure document: three or
/// more top clauses, one of them the procedure (流程), and three or more
/// decimal sub-clauses.
pub(super) fn sop_as_markdown(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let tops: Vec<Option<&str>> = lines.iter().map(|l| top_clause(l)).collect();
    let subs = lines.iter().filter(|l| sub_clause(l).is_some()).count();
    let procedure = tops
        .iter()
        .flatten()
        .any(|t| classify_heading(t, false) == Section::Steps);
    if tops.iter().flatten().count() < 3 || subs < 3 || !procedure {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 16);
    let mut into = In::Dropped;
    let mut titled = false;
    let mut step = 0usize;
    let mut steps_open = false;
    for (line, top) in lines.iter().zip(&tops) {
        let t = line.trim();
        if let Some(title) = top {
            let section = classify_heading(title, false);
            into = match section {
                Section::Unknown => In::Dropped,
                s => In::Section(s),
            };
            steps_open = section == Section::Steps;
            out.push(if section == Section::Unknown {
                String::new()
            } else {
                format!("## {title}")
            });
            continue;
        }
        if t.is_empty()
            || t.chars()
                .all(|c| matches!(c, '-' | '—' | '=' | '_' | '─' | '━'))
        {
            out.push(String::new());
            continue;
        }
        if into == In::Dropped {
            // The header's first line names the document.
            if !titled && out.iter().all(|l| l.trim().is_empty()) {
                titled = true;
                out.push(format!("# {t}"));
            } else {
                out.push(String::new());
            }
            continue;
        }
        let procedure = matches!(into, In::Step | In::Opening | In::Section(Section::Steps));
        let (depth, rest) = match sub_clause(t) {
            Some((depth, rest)) => (Some(depth), rest),
            None => (None, t),
        };
        if procedure && depth == Some(1) {
            // `4.1 开场` is the opening; any other sub-clause of the procedure a step.
            if classify_heading(rest, false) == Section::Opening {
                out.push("## 开场白".into());
                into = In::Opening;
                steps_open = false;
            } else {
                if !steps_open {
                    out.push("## 通话流程".into());
                    steps_open = true;
                }
                step += 1;
                out.push(format!("### 第{step}步 {rest}"));
                into = In::Step;
            }
            continue;
        }
        match into {
            In::Opening | In::Step => {
                if let Some(words) = speech(rest) {
                    out.push(format!("- “{words}”"));
                } else if rest.starts_with("记录") || rest.starts_with("登记") {
                    // "记录：…；没有的记"无"": what to record, quotes and all.
                    out.push(format!("- {}", rest.replace(['"', '“', '”'], "")));
                } else if rest.starts_with("异常处理")
                    && rest.trim_end_matches(['：', ':']).len() <= "异常处理".len()
                {
                    out.push(String::new());
                } else if let Some(case) = lettered(rest) {
                    out.push(case_line(case));
                } else if is_note(rest) || into == In::Opening {
                    out.push(format!("- （{rest}）"));
                } else {
                    out.push(format!("- {rest}"));
                }
            }
            In::Section(Section::End | Section::Closing | Section::EndConditions) => {
                if is_note(rest) {
                    out.push(String::new());
                } else if let Some(case) = lettered(rest) {
                    // "(a) 预约成功：好的，已经为您预约好了…": a labelled closing line.
                    match case.split_once('：') {
                        Some((label, words))
                            if label.chars().count() <= 8 && !words.contains(['“', '"']) =>
                        {
                            out.push(format!("- {label}：“{}”", words.trim()))
                        }
                        _ => out.push(format!("- {case}")),
                    }
                } else if depth.is_some() {
                    out.push(format!("{rest}："));
                } else {
                    out.push(rest.to_string());
                }
            }
            // "3.2 来电客户：…" is the callee, "3.3 上门师傅：…" someone else.
            In::Section(Section::Role) if depth.is_some() => match rest.split_once(['：', ':']) {
                Some((who, what)) if CALLER_LABELS.iter().any(|l| who.contains(l)) => {
                    out.push(format!("## 客户画像\n{}", what.trim()));
                    into = In::Section(Section::Profile);
                }
                Some((who, _)) if !AGENT_LABELS.iter().any(|l| who.contains(l)) => {
                    out.push(String::new())
                }
                _ => out.push(rest.to_string()),
            },
            _ => out.push(if depth.is_some() {
                rest.to_string()
            } else {
                line.to_string()
            }),
        }
    }
    Some(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::super::script::Script;
    use super::*;

    #[test]
    fn clauses_are_told_apart() {
        assert_eq!(top_clause("4 作业流程"), Some("作业流程"));
        assert_eq!(top_clause("5. 常见问题"), Some("常见问题"));
        assert_eq!(top_clause("7.1 本规范由客服部负责解释"), None);
        assert_eq!(top_clause("2026 年"), None);
        assert_eq!(sub_clause("4.2 了解情况"), Some((1, "了解情况")));
        assert_eq!(sub_clause("4.2.1 细则"), Some((2, "细则")));
        assert_eq!(
            lettered("(a) 客户只有座机：记录"),
            Some("客户只有座机：记录")
        );
        assert_eq!(lettered("（b）替家人预约"), Some("替家人预约"));
        assert_eq!(speech("标准话术：您好"), Some("您好"));
    }

    /// A procedure document: header, scope and appendix dropped, the procedure's
    /// sub-clauses as the opening and steps, lettered cases as branches, notes
    /// unsaid, the Q&A and the closing clauses read.
    #[test]
    fn a_script_as_a_procedure_document() {
        let doc = "安居开锁服务有限公司
客服中心作业指导书
文件编号：AJ-SOP-003
版    本：A/1
------------------------
1 目的
规范开锁预约热线的接听。
2 适用范围
2.1 适用于开锁热线全体坐席。
3 角色
3.1 坐席：安居开锁客服“小安”，语气平和。
4 作业流程
4.1 开场
标准话术：您好，安居开锁热线，我是小安，请问您需要开什么锁？
注：客户已说明的信息不再重复询问。
4.2 登记地址
标准话术：请问师傅上门的地址是哪里？
记录：小区、楼栋、门牌号。
异常处理：
(a) 地址在外地：告知“不好意思，这个地址我们暂时上不了门。”本次不预约。
4.3 登记电话
标准话术：请问师傅联系您的手机号是多少？
记录：11位手机号。
5 常见问题解答
5.1 问：开锁要多少钱？
答：普通门锁一百五十元，保险柜另外报价。
6 结束规范
6.1 结束语
(a) 预约成功：好的，师傅马上联系您，再见。
6.2 结束条件
(a) 地址和电话登记完成。
注：不得承诺几分钟到。
7 附则
7.1 修订记录
A/0     2025-03-01    首次发布
";
        let s = Script::parse(doc, "sop").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert_eq!(
            s.opening, "您好，安居开锁热线，我是小安，请问您需要开什么锁？",
            "{s}"
        );
        assert_eq!(s.steps.len(), 2, "{s}");
        assert_eq!(s.steps[0].lines, ["请问师傅上门的地址是哪里？"], "{s}");
        assert_eq!(s.steps[0].conditionals.len(), 1, "{s}");
        assert_eq!(s.steps[1].lines, ["请问师傅联系您的手机号是多少？"], "{s}");
        assert_eq!(s.kb.len(), 1, "{s}");
        assert_eq!(s.closing, ["好的，师傅马上联系您，再见。"], "{s}");
        assert_eq!(s.end_conditions, ["地址和电话登记完成。"], "{s}");
        assert!(s.role.contains("小安"), "{s}");
        assert!(!s.to_string().contains("修订"), "{s}");
    }
}
