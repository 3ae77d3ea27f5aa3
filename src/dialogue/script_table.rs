//! Table layer of the call-script loader.
//!
//! Scripts kept as spreadsheets or written as Markdown tables put their parts in
//! tables: a steps table (| 序号 | 环节 | 坐席话术 | 需记录 | 备注 / 分支 |), a
//! two-column table of settings (| 项目 | 内容 | with rows such as 坐席角色 /
//! 核心任务), an end table (| 情况 | 结束语 |), and two-column descriptions such as
//! a caller profile (| 类型 | 特点 |). This layer rewrites those tables as the
//! lines the loader reads: numbered steps with bulleted lines, records and
//! branches; `**标签**：内容` labels; 结束条件：/结束语： lists. A Q&A table
//! (| 问题 | 回答 |) and any other table pass through unchanged.

use super::script::{classify_heading, heading_re, Section, CLOSING_LABELS};
use super::text::{extract_speech, has_quote, strip_markup};

/// The document's lines with its tables rewritten, and the opening line found in
/// a steps table's opening row.
pub(super) struct Tables {
    pub lines: Vec<String>,
    pub opening: Option<String>,
}

fn cells(l: &str) -> Vec<String> {
    l.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// `| --- | :--: |`: the row under a table's header.
fn is_separator(row: &[String]) -> bool {
    row.iter()
        .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
}

/// A cell that holds nothing: empty or a dash (—, -, 无, /).
fn is_empty_cell(c: &str) -> bool {
    let c = strip_markup(c);
    c.is_empty() || c == "无" || c.chars().all(|ch| "—–-－/／ ".contains(ch))
}

/// A cell's parts, split at `<br>`.
fn parts(c: &str) -> impl Iterator<Item = &str> {
    c.split("<br>")
        .flat_map(|p| p.split("<br/>"))
        .flat_map(|p| p.split("<br />"))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// "**开场白**" or "**流程表**（按顺序走…）": a bold line that titles the table
/// under it, as a heading would.
fn bold_title(l: &str) -> Option<&str> {
    let t = l.trim().strip_prefix("**")?;
    let (title, rest) = t.split_once("**")?;
    let rest = rest.trim();
    let aside = rest.is_empty() || (rest.starts_with(['（', '(']) && rest.ends_with(['）', ')']));
    (aside && !title.is_empty() && title.chars().count() <= 12).then_some(title.trim())
}

/// A Q&A table's header (| 客户问题 | 标准答复 |).
/// Also | 客户可能说 | 坐席应答 |: what the caller says, and the agreed reply.
fn is_qa_header(header: &[String]) -> bool {
    let asks = |h: &String| {
        h.contains('问')
            || ["客户说", "可能说", "客户原话", "来电说"]
                .iter()
                .any(|k| h.contains(k))
    };
    let answers = |h: &String| {
        h.contains('答')
            || ["回复", "口径", "坐席说", "客服说"]
                .iter()
                .any(|k| h.contains(k))
    };
    header.iter().any(asks) && header.iter().any(answers)
}

/// Rewrites the document's tables as the lines the loader reads.
pub(super) fn tables_as_text(text: &str) -> Tables {
    let lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    let is_row = |l: &str| l.trim_start().starts_with('|');
    let mut out = Vec::with_capacity(lines.len());
    let mut opening = None;
    // The section the table stands in, by its Markdown heading.
    let mut section = Section::Unknown;
    let mut i = 0;
    while i < lines.len() {
        if !is_row(&lines[i]) {
            if let Some(c) = heading_re().captures(&lines[i]) {
                section = classify_heading(&c[2], false);
            } else if let Some(t) = bold_title(&lines[i]) {
                section = classify_heading(t, false);
                let names_a_step = t.contains(['：', ':'])
                    || t.starts_with(['第', '步', 'S', 's'])
                    || t.starts_with(|c: char| c.is_ascii_digit());
                if section != Section::Unknown && !names_a_step {
                    // "**结束语**" alone on its line titles a section as "## 结束语" does.
                    out.push(format!("## {}", lines[i].trim().replacen("**", "", 2)));
                    i += 1;
                    continue;
                }
            }
            out.push(lines[i].clone());
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && is_row(&lines[i]) {
            i += 1;
        }
        let rows: Vec<Vec<String>> = lines[start..i].iter().map(|l| cells(l)).collect();
        let header = &rows[0];
        let col = |keys: &[&str]| {
            header
                .iter()
                .position(|h| keys.iter().any(|k| h.contains(k)))
        };
        let speech = col(&["话术", "台词", "坐席说", "说法", "原话"]);
        let closing = col(CLOSING_LABELS);
        if let (Some(speech), Section::Opening) = (speech, section) {
            // | 场景 | 话术 | under 开场白: the first row's line opens the call.
            let said = rows[1..]
                .iter()
                .filter(|r| !is_separator(r))
                .find_map(|r| r.get(speech).filter(|c| !is_empty_cell(c)));
            if let (Some(said), None) = (said, &opening) {
                opening = Some(parts(said).map(extract_speech).collect());
            }
            out.extend((start..i).map(|_| String::new()));
        } else if let (Some(speech), Section::Closing) = (speech, section) {
            // | 情况 | 话术 | under 结束语: closing lines, one for each case.
            out.push("结束语：".to_string());
            for row in rows[1..].iter().filter(|r| !is_separator(r)) {
                if let Some(l) = row.get(speech).filter(|c| !is_empty_cell(c)) {
                    for part in parts(l) {
                        out.push(format!("“{}”", extract_speech(part)));
                    }
                }
            }
        } else if let Some(speech) = speech {
            steps_table(&rows, speech, &mut out, &mut opening);
        } else if let (Some(closing), true) = (closing, header.len() >= 2) {
            end_table(&rows, closing, &mut out);
        } else if header.len() == 2 && !is_qa_header(header) && section != Section::Kb {
            // | 项目 | 内容 |: one `**label**：text` line a row, read as labels
            // (坐席角色, 核心任务) or as a section's items.
            out.push(String::new());
            for row in &rows[1..] {
                match row.as_slice() {
                    [k, v] if !is_separator(row) && !is_empty_cell(v) => {
                        out.push(format!("**{}**：{}", strip_markup(k), v))
                    }
                    _ => out.push(String::new()),
                }
            }
        } else {
            out.extend(lines[start..i].iter().cloned());
        }
    }
    Tables {
        lines: out,
        opening,
    }
}

/// A steps table (| 序号 | 目的 | 话术 | 需记录 | 特殊情况 |) as the numbered list
/// the loader reads: one "N. title" per row, its speech as a bullet, what it
/// records as a "记录：" bullet, and every note cell part (split at <br>) as a
/// bullet. The opening row (开场) is the opening line, not a step. When the table
/// quotes its speech, a note part without a quote is an instruction to the agent
/// and is bracketed so that it is never said.
fn steps_table(
    rows: &[Vec<String>],
    speech: usize,
    out: &mut Vec<String>,
    opening: &mut Option<String>,
) {
    let header = &rows[0];
    let col = |keys: &[&str]| {
        header
            .iter()
            .position(|h| keys.iter().any(|k| h.contains(k)))
    };
    let title = col(&[
        "目的", "环节", "名称", "标题", "阶段", "内容", "步骤", "流程", "节点",
    ])
    .filter(|t| *t != speech);
    let record = col(&["记录", "收集", "采集", "登记", "记下"]).filter(|c| *c != speech);
    // | 客户回应 | 处理 |: what the caller may answer and what the agent does then.
    // A row under a step with only these two filled is one of that step's branches.
    let response = col(&[
        "客户回应",
        "客户反应",
        "客户回答",
        "客户答复",
        "对方回应",
        "客户说",
    ])
    .filter(|c| *c != speech);
    let action = col(&["处理", "坐席动作", "下一步", "动作", "操作"])
        .filter(|c| Some(*c) != response && *c != speech && Some(*c) != record);
    let special = col(&[
        "特殊", "情况", "应对", "分支", "备注", "异常", "说明", "注意",
    ])
    .filter(|c| Some(*c) != record && *c != speech && Some(*c) != action);
    // A notes column (备注, 说明) holds instructions: a part without a quote is
    // one even when the speech is not quoted.
    let notes = special.is_some_and(|c| {
        ["备注", "说明", "注意"]
            .iter()
            .any(|k| header[c].contains(k))
    });
    let quoted = notes
        || rows[1..]
            .iter()
            .any(|r| r.get(speech).is_some_and(|c| has_quote(c)));
    let mut n = 0;
    for row in rows.iter().skip(1) {
        if is_separator(row) {
            out.push(String::new());
            continue;
        }
        let t = title.and_then(|t| row.get(t)).cloned();
        let blank = |c: Option<usize>| c.and_then(|c| row.get(c)).is_none_or(|c| is_empty_cell(c));
        if n > 0 && blank(title) && blank(Some(speech)) {
            if let (Some(resp), Some(act)) = (
                response
                    .and_then(|c| row.get(c))
                    .filter(|c| !is_empty_cell(c)),
                action
                    .and_then(|c| row.get(c))
                    .filter(|c| !is_empty_cell(c)),
            ) {
                let cond = strip_markup(resp);
                let cond = cond
                    .trim_start_matches(['若', '如'])
                    .trim_start_matches("果");
                out.push(format!(
                    "    - 如果{cond}：{}",
                    parts(act).collect::<Vec<_>>().join("")
                ));
                continue;
            }
        }
        if opening.is_none()
            && t.as_deref()
                .is_some_and(|t| classify_heading(t, false) == Section::Opening)
        {
            let said: String = row
                .get(speech)
                .map(|c| parts(c).map(extract_speech).collect())
                .unwrap_or_default();
            if !said.is_empty() {
                *opening = Some(said);
                out.push(String::new());
                continue;
            }
        }
        n += 1;
        // "1 确认科目": the cell's own number is the step's.
        let t = t
            .map(|t| {
                t.trim_start_matches(|c: char| c.is_ascii_digit() || " .、．".contains(c))
                    .to_string()
            })
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("步骤{n}"));
        out.push(format!("{n}. {t}"));
        if let Some(sp) = row.get(speech) {
            for part in parts(sp) {
                out.push(format!("    - {part}"));
            }
        }
        if let Some(rc) = record
            .and_then(|c| row.get(c))
            .filter(|c| !is_empty_cell(c))
        {
            record_cell(&strip_markup(rc), out);
        }
        // The step's own row: what it does with the expected answer ("记录：练车
        // 科目", "预约成功，说结束语") is a record or a note, never speech.
        if let Some(act) = action
            .and_then(|c| row.get(c))
            .filter(|c| !is_empty_cell(c))
        {
            for part in parts(act) {
                let p = strip_markup(part);
                if ["记录", "登记", "记下"].iter().any(|k| p.starts_with(k)) {
                    let what = p
                        .trim_start_matches(['记', '录', '登', '下', '：', ':'])
                        .trim();
                    out.push(format!("    - 记录：{what}"));
                } else {
                    out.push(format!("    - （{p}）"));
                }
            }
        }
        if let Some(sc) = special.and_then(|c| row.get(c)) {
            for part in parts(sc) {
                if quoted && !has_quote(part) && !part.starts_with(['【', '（', '(', '[']) {
                    out.push(format!("    - （{part}）"));
                } else {
                    out.push(format!("    - {part}"));
                }
            }
        }
    }
}

/// A record cell (`记录：故障描述。进水的：提醒客户先别充电`): the first sentence,
/// or one labelled 记录, is what the step records; the rest (what to do in a case,
/// how to read the value back) are notes, never said.
fn record_cell(cell: &str, out: &mut Vec<String>) {
    fn label(s: &str) -> Option<&str> {
        ["记录", "登记", "记下", "需记录"]
            .iter()
            .find_map(|k| s.strip_prefix(k))
            .and_then(|r| r.strip_prefix(['：', ':']))
            .map(str::trim)
    }
    for (i, sentence) in cell
        .split_inclusive('。')
        .map(|s| s.trim().trim_end_matches('。'))
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        match label(sentence) {
            Some(what) => out.push(format!("    - 记录：{what}")),
            // A case (`过保的：按价目表收费`) is a note even first.
            None if i == 0 && !sentence.contains(['：', ':']) => {
                out.push(format!("    - 记录：{sentence}"))
            }
            None => out.push(format!("    - （{sentence}）")),
        }
    }
}

/// An end table (| 情况 | 结束语 |): its cases as 结束条件： items and its lines as
/// 结束语：, each after its case.
fn end_table(rows: &[Vec<String>], closing: usize, out: &mut Vec<String>) {
    let case = (0..rows[0].len()).find(|c| *c != closing);
    let data: Vec<&Vec<String>> = rows[1..].iter().filter(|r| !is_separator(r)).collect();
    out.push("结束条件：".to_string());
    for row in &data {
        if let Some(c) = case.and_then(|c| row.get(c)).filter(|c| !is_empty_cell(c)) {
            out.push(format!("- {}", strip_markup(c)));
        }
    }
    out.push("结束语：".to_string());
    for row in &data {
        if let Some(l) = row.get(closing).filter(|c| !is_empty_cell(c)) {
            for part in parts(l) {
                out.push(format!("“{}”", extract_speech(part)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::script::{FieldKind, Script, StepKind};

    /// A script written all in tables: settings, steps with an opening row, a
    /// records column and notes with <br> branches, Q&A, an end table and a
    /// caller-profile table.
    #[test]
    fn a_script_in_tables() {
        let doc = "**城西眼镜店 验光预约热线**

| 项目 | 内容 |
| --- | --- |
| 版本 | 第2版 |
| 坐席角色 | 城西眼镜店的预约客服小明，说话耐心。 |
| 核心任务 | 约好验光的时间，登记配镜人数。 |

### 接待流程

| 序号 | 环节 | 坐席话术 | 需记录 | 备注 |
| --- | --- | --- | --- | --- |
| 0 | 开场 | “您好，城西眼镜店，请问要预约验光吗？” | — | 响铃两声内接起。 |
| 1 | 人数 | “这次一共几位来配镜？” | 配镜人数 | 客户已经说了人数的，不再问。<br>若客户说带小孩：“小朋友我们有专门的验光师。”（登记年龄） |
| 2 | 预约时间 | “您看哪天过来方便？” | 到店日期和时间 | 若客户只有晚上有空：同上，请客户改天。 |
| 3 | 核对 | “我跟您核对一下，时间和人数都记好了，对吗？” | 是否确认（是／否） | 若客户说不对：“您说一下哪里要改。”（改完再核对一次） |
| 4 | 结束 | “好的，到店报手机号就行。” | — | 说结束语挂机。 |

### 常见问题

| 客户问题 | 标准答复 |
| --- | --- |
| 来验光需要另外付钱吗？ | 验光是免费的，配镜另算。 |

### 结束条件与结束语

| 情况 | 结束语 |
| --- | --- |
| 时间和人数都已登记 | “那到时候见，再见。” |
| 客户不需要 | “好的，打扰了，再见。” |

### 来电客户画像

| 类型 | 特点 |
| --- | --- |
| 学生家长 | 关心孩子近视加深，问得细。 |
";
        let s = Script::parse(doc, "tables").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert_eq!(s.role, "城西眼镜店的预约客服小明，说话耐心。", "{s}");
        assert_eq!(s.task, "约好验光的时间，登记配镜人数。", "{s}");
        assert_eq!(s.opening, "您好，城西眼镜店，请问要预约验光吗？", "{s}");
        let titles: Vec<&str> = s.steps.iter().map(|st| st.title.as_str()).collect();
        assert_eq!(titles, ["人数", "预约时间", "核对", "结束"], "{s}");
        let st = &s.steps[0];
        assert_eq!(st.lines, ["这次一共几位来配镜？"]);
        assert_eq!(st.collects, ["配镜人数"]);
        assert_eq!(st.field, Some(FieldKind::Number), "{s}");
        assert_eq!(st.directions, ["客户已经说了人数的，不再问。", "登记年龄"]);
        assert_eq!(st.conditionals.len(), 1);
        assert_eq!(st.conditionals[0].line, "小朋友我们有专门的验光师。");
        // An unquoted note in a quoted table is an instruction, even after a condition.
        assert!(s.steps[1].conditionals.is_empty(), "{s}");
        assert_eq!(s.steps[1].directions.len(), 1, "{s}");
        // A yes/no read-back records a yes or no, not the values it reads back.
        assert_eq!(s.steps[2].kind, StepKind::Confirm);
        assert_eq!(s.steps[2].field, None, "{s}");
        assert_eq!(s.steps[2].conditionals[0].line, "您说一下哪里要改。");
        assert_eq!(s.steps[2].directions, ["改完再核对一次"]);
        assert_eq!(s.steps[3].lines, ["好的，到店报手机号就行。"]);
        assert_eq!(s.steps[3].directions, ["说结束语挂机。"]);
        assert_eq!(s.kb.len(), 1);
        assert_eq!(s.kb[0].answer, "验光是免费的，配镜另算。");
        assert_eq!(s.end_conditions, ["时间和人数都已登记", "客户不需要"]);
        assert_eq!(s.closing, ["那到时候见，再见。", "好的，打扰了，再见。"]);
        assert_eq!(
            s.persona.behaviours,
            ["学生家长：关心孩子近视加深，问得细。"],
            "{s}"
        );
    }
}
