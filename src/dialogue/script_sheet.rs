//! Spreadsheet layer of the call-script loader.
//!
//! Scripts kept in Excel and pasted as text arrive as rows of cells separated by
//! tabs (or, from a fixed-width export, by runs of spaces): label rows (角色 / 任务 /
//! 来电客户 in one column, the text in the next), a steps block under a header row
//! (序号 环节 话术 需记录 备注) with the opening and closing lines as rows without a
//! number, a 结束条件 row and a 问题 / 答复 block. A cell holding several lines is
//! quoted the way Excel quotes it ("…""…"). This layer rewrites such a sheet as
//! the Markdown the loader reads: a heading a label, the steps block as a steps
//! table, the closing rows as a 结束语 section and the Q&A block as a Q&A table,
//! so that a sheet loads like the same script written with headings.

use std::sync::OnceLock;

use regex::Regex;

use super::script::{classify_heading, re, Section, CALLEE_HALF};
use super::text::strip_markup;

/// Header names of the steps block's columns, in common variants.
const NUMBER_COLS: &[&str] = &["序号", "编号", "步骤序号", "No", "NO", "no", "No.", "#"];
const TITLE_COLS: &[&str] = &[
    "环节",
    "步骤",
    "流程",
    "节点",
    "名称",
    "阶段",
    "目的",
    "环节名称",
    "步骤名称",
    "流程节点",
];
const SPEECH_COLS: &[&str] = &["话术", "台词", "坐席说", "话术内容"];
const RECORD_COLS: &[&str] = &["记录", "采集", "收集", "登记"];
const NOTE_COLS: &[&str] = &["备注", "说明", "注意", "分支", "特殊", "异常", "应对"];
/// Header names of a Q&A block's columns.
const QUESTION_COLS: &[&str] = &["问题", "客户问题", "常见问题", "提问", "客户提问", "问"];
const ANSWER_COLS: &[&str] = &[
    "答复",
    "回答",
    "标准答复",
    "标准回答",
    "答案",
    "解答",
    "回复",
    "答",
    "参考答复",
];

/// One row: its 0-based line and its cells by column.
type Row = (usize, Vec<String>);

/// Where the steps block keeps what.
struct StepCols {
    number: Option<usize>,
    title: Option<usize>,
    speech: usize,
    record: Option<usize>,
    note: Option<usize>,
}

fn norm(c: &str) -> String {
    strip_markup(c)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn find(cells: &[String], names: &[&str], exact: bool) -> Option<usize> {
    cells.iter().position(|c| {
        let c = norm(c);
        !c.is_empty()
            && c.chars().count() <= 8
            && names
                .iter()
                .any(|n| if exact { c == *n } else { c.contains(n) })
    })
}

/// A steps header row (序号 环节 话术 …): a speech column and a number or title one.
fn step_cols(cells: &[String]) -> Option<StepCols> {
    let speech = find(cells, SPEECH_COLS, false)?;
    let mut number = find(cells, NUMBER_COLS, true).filter(|c| *c != speech);
    let titles: Vec<usize> = (0..cells.len())
        .filter(|&c| c != speech && Some(c) != number)
        .filter(|&c| find(&cells[c..=c], TITLE_COLS, false).is_some())
        .collect();
    // 步骤 | 环节 | 话术: the first of two title-like columns holds the numbers.
    if number.is_none() && titles.len() >= 2 {
        number = Some(titles[0]);
    }
    let title = titles.into_iter().find(|c| Some(*c) != number);
    if number.is_none() && title.is_none() {
        return None;
    }
    let taken = [Some(speech), number, title];
    let record = find(cells, RECORD_COLS, false).filter(|c| !taken.contains(&Some(*c)));
    let note =
        find(cells, NOTE_COLS, false).filter(|c| !taken.contains(&Some(*c)) && Some(*c) != record);
    Some(StepCols {
        number,
        title,
        speech,
        record,
        note,
    })
}

/// A Q&A header row (问题 答复).
fn qa_cols(cells: &[String]) -> Option<(usize, usize)> {
    let q = find(cells, QUESTION_COLS, true)?;
    let a = find(cells, ANSWER_COLS, true).filter(|a| *a != q)?;
    Some((q, a))
}

fn step_number_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*[.．、)）]?$",
        &C,
    )
}

fn inline_item_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"(?:^|[；;。\s])\s*[(（]?\d{1,2}\s*[.．、)）]\s*", &C)
}

/// Tab-separated rows, with Excel's quoting: a cell that starts with `"` runs to
/// the next lone `"`, across line breaks, and `""` inside it is one `"`.
fn tab_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut cells = vec![String::new()];
    let mut line = 0usize;
    let mut start = 0usize;
    let mut chars = text.chars().peekable();
    let mut at_cell_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cells.last_mut().unwrap().push('"');
                }
                '"' if matches!(chars.peek(), None | Some('\t') | Some('\n')) => quoted = false,
                '\n' => {
                    line += 1;
                    cells.last_mut().unwrap().push('\n');
                }
                _ => cells.last_mut().unwrap().push(c),
            }
            continue;
        }
        match c {
            '\t' => {
                cells.push(String::new());
                at_cell_start = true;
                continue;
            }
            '\n' => {
                rows.push((start, std::mem::replace(&mut cells, vec![String::new()])));
                line += 1;
                start = line;
                at_cell_start = true;
                continue;
            }
            '"' if at_cell_start => quoted = true,
            _ => cells.last_mut().unwrap().push(c),
        }
        at_cell_start = false;
    }
    if cells.iter().any(|c| !c.is_empty()) {
        rows.push((start, cells));
    }
    for (_, cells) in &mut rows {
        for c in cells.iter_mut() {
            *c = c.trim().to_string();
        }
    }
    rows
}

/// A line cut into cells at runs of two or more spaces (or a full-width space),
/// each with the display column it starts at.
fn segments(line: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut col = 0usize;
    let mut cur = String::new();
    let mut cur_start = 0usize;
    let mut spaces = 0usize;
    for c in line.chars() {
        let w = if (c as u32) >= 0x2E80 { 2 } else { 1 };
        if c == ' ' || c == '\u{3000}' || c == '\t' {
            spaces += if c == ' ' { 1 } else { 2 };
        } else {
            if spaces >= 2 || cur.is_empty() {
                if !cur.trim().is_empty() {
                    out.push((cur_start, cur.trim().to_string()));
                }
                cur = String::new();
                cur_start = col;
            } else if spaces == 1 {
                cur.push(' ');
            }
            spaces = 0;
            cur.push(c);
        }
        col += w;
    }
    if !cur.trim().is_empty() {
        out.push((cur_start, cur.trim().to_string()));
    }
    out
}

/// Rows of a fixed-width export: after a header row each cell goes to the column
/// whose header starts nearest to the left of it; before one, cells are in order
/// (with an empty first cell when the line is indented).
fn space_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut header: Option<Vec<usize>> = None;
    for (i, line) in text.lines().enumerate() {
        let segs = segments(line);
        let texts: Vec<String> = segs.iter().map(|(_, t)| t.clone()).collect();
        if segs.len() >= 2 && (step_cols(&texts).is_some() || qa_cols(&texts).is_some()) {
            header = Some(segs.iter().map(|(c, _)| *c).collect());
            rows.push((i, texts));
            continue;
        }
        let cells = match &header {
            Some(starts) if !segs.is_empty() => {
                let mut cells = vec![String::new(); starts.len()];
                for (c, t) in &segs {
                    let k = starts.iter().rposition(|s| *s <= c + 1).unwrap_or(0);
                    if !cells[k].is_empty() {
                        cells[k].push(' ');
                    }
                    cells[k].push_str(t);
                }
                cells
            }
            _ => {
                let mut cells = Vec::new();
                if segs.first().is_some_and(|(c, _)| *c >= 2) {
                    cells.push(String::new());
                }
                cells.extend(texts);
                cells
            }
        };
        rows.push((i, cells));
    }
    rows
}

/// A cell as one Markdown table cell: lines joined with `<br>`, no bars.
fn table_cell(c: &str) -> String {
    c.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("<br>")
        .replace('|', "｜")
}

/// A short label cell (角色, 结束条件, 来电客户): no sentence punctuation.
fn is_label(c: &str) -> bool {
    let c = norm(c);
    (1..=10).contains(&c.chars().count())
        && !c.contains(['，', '。', '？', '！', '；', '：', ':', '“', '「', '"'])
}

/// A label describing who is on the other end (来电客户, 来电读者, 被叫人情况).
fn is_callee_label(label: &str) -> bool {
    CALLEE_HALF.iter().any(|k| label.contains(k))
        || label.starts_with("来电")
        || label.starts_with("被叫")
        || [
            "客户特点",
            "客户情况",
            "客户说明",
            "客户类型",
            "客户群体",
            "用户特点",
            "用户情况",
        ]
        .iter()
        .any(|k| label.contains(k))
}

/// A cell's numbered items ("1. …；2. …"), or its lines.
fn items(c: &str) -> Vec<String> {
    let parts: Vec<String> = inline_item_re()
        .split(c)
        .map(|p| {
            p.trim()
                .trim_end_matches(['；', ';', '。'])
                .trim()
                .to_string()
        })
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() >= 2 {
        return parts;
    }
    c.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Rewrites a spreadsheet pasted as text as the Markdown the loader reads; `None`
/// when the text has no steps header row in tab- or space-separated columns.
pub(super) fn sheet_as_markdown(text: &str) -> Option<String> {
    let is_md_table = |l: &str| l.trim_start().starts_with('|');
    if text.lines().any(is_md_table) {
        return None;
    }
    let has_header = |rows: &[Row]| {
        rows.iter()
            .any(|(_, c)| c.iter().filter(|c| !c.is_empty()).count() >= 2 && step_cols(c).is_some())
    };
    let tabbed = text.lines().filter(|l| l.contains('\t')).count() >= 3;
    let rows = if tabbed {
        tab_rows(text)
    } else {
        space_rows(text)
    };
    if !has_header(&rows) {
        return None;
    }
    Some(rows_as_markdown(&rows))
}

enum Block {
    Head,
    Steps(StepCols),
    Qa(usize, usize),
}

fn rows_as_markdown(rows: &[Row]) -> String {
    let mut out: Vec<String> = Vec::new();
    // Sections about the callee close the document: the loader reads everything
    // after the callee's heading as the callee's half.
    let mut callee: Vec<String> = Vec::new();
    let mut closing: Vec<String> = Vec::new();
    let mut block = Block::Head;
    let mut titled = false;
    let mut kb_heading = false;
    let cell = |cells: &[String], c: Option<usize>| -> String {
        c.and_then(|c| cells.get(c)).cloned().unwrap_or_default()
    };
    let flush_closing = |out: &mut Vec<String>, closing: &mut Vec<String>| {
        if !closing.is_empty() {
            out.push(String::new());
            out.push("## 结束语".to_string());
            out.append(closing);
            out.push(String::new());
        }
    };
    for (_, cells) in rows {
        let filled: Vec<&String> = cells.iter().filter(|c| !c.is_empty()).collect();
        if filled.is_empty() {
            out.push(String::new());
            continue;
        }
        if filled.len() >= 2 {
            if let Some(cols) = step_cols(cells) {
                flush_closing(&mut out, &mut closing);
                out.push(String::new());
                out.push("## 通话流程".to_string());
                out.push("| 序号 | 环节 | 话术 | 需记录 | 备注 |".to_string());
                out.push("| --- | --- | --- | --- | --- |".to_string());
                block = Block::Steps(cols);
                continue;
            }
            if let Some((q, a)) = qa_cols(cells) {
                flush_closing(&mut out, &mut closing);
                out.push(String::new());
                if !kb_heading {
                    out.push("## 常见问题".to_string());
                    kb_heading = true;
                }
                out.push("| 问题 | 答复 |".to_string());
                out.push("| --- | --- |".to_string());
                block = Block::Qa(q, a);
                continue;
            }
        }
        match &block {
            Block::Steps(cols) => {
                let number = cell(cells, cols.number);
                let mut title = cell(cells, cols.title);
                let speech = cell(cells, Some(cols.speech));
                let mut numbered = step_number_re().is_match(&number);
                if cols.number.is_none() && step_number_re().is_match(&title) {
                    // The only title-like column holds the numbers.
                    numbered = true;
                    title.clear();
                }
                if !numbered && cols.title.is_none() && !number.is_empty() {
                    // No title column: an unnumbered row names itself in the first.
                    title = number.clone();
                }
                let kind = classify_heading(&title, false);
                let label_row =
                    !numbered && is_label(&number) && speech.is_empty() && cols.number.is_some();
                if label_row {
                    // "结束条件  1. …": the steps block is over.
                    block = Block::Head;
                } else if !numbered
                    && matches!(kind, Section::Closing | Section::End)
                    && !speech.is_empty()
                {
                    let note = cell(cells, cols.note);
                    let note = if note.is_empty() {
                        String::new()
                    } else {
                        format!("（{}）", note.lines().collect::<Vec<_>>().join("；"))
                    };
                    closing.push(format!("- “{}”{note}", speech.lines().collect::<String>()));
                    continue;
                } else if number.is_empty() && title.is_empty() && !speech.is_empty() {
                    // A row that only carries more speech belongs to the step above.
                    if let Some(last) = out.last_mut().filter(|l| l.starts_with("| ")) {
                        let mut cs: Vec<String> = last
                            .trim_matches('|')
                            .split('|')
                            .map(|c| c.trim().to_string())
                            .collect();
                        if cs.len() == 5 {
                            cs[2] = format!("{}<br>{}", cs[2], table_cell(&speech));
                            *last = format!("| {} |", cs.join(" | "));
                            continue;
                        }
                    }
                } else {
                    let record = cell(cells, cols.record);
                    let note = cell(cells, cols.note);
                    out.push(format!(
                        "| {} | {} | {} | {} | {} |",
                        table_cell(&number),
                        table_cell(&title),
                        table_cell(&speech),
                        table_cell(&record),
                        table_cell(&note)
                    ));
                    continue;
                }
            }
            Block::Qa(q, a) => {
                let (qt, at) = (cell(cells, Some(*q)), cell(cells, Some(*a)));
                if !qt.is_empty() && !at.is_empty() {
                    out.push(format!("| {} | {} |", table_cell(&qt), table_cell(&at)));
                    continue;
                }
                if qt.is_empty() && !at.is_empty() {
                    if let Some(last) = out.last_mut().filter(|l| l.starts_with("| ")) {
                        let trimmed = last.trim_end().trim_end_matches('|').trim_end();
                        *last = format!("{trimmed}{} |", table_cell(&at));
                        continue;
                    }
                }
                block = Block::Head;
            }
            Block::Head => {}
        }
        // A label row, a section title or free text.
        flush_closing(&mut out, &mut closing);
        out.push(String::new());
        let first = filled[0];
        let rest: Vec<&str> = filled[1..].iter().map(|c| c.as_str()).collect();
        if rest.is_empty() {
            let kind = classify_heading(first, false);
            if !titled && out.iter().all(|l| l.trim().is_empty()) {
                out.push(format!("# {}", first.lines().collect::<String>()));
                titled = true;
            } else if kind != Section::Unknown && is_label(first) {
                kb_heading |= kind == Section::Kb;
                out.push(format!("## {}", norm(first)));
            } else {
                out.extend(first.lines().map(str::to_string));
            }
            continue;
        }
        if !is_label(first) {
            // "编制：质检组  更新日期：…": free text across cells.
            out.push(
                filled
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            continue;
        }
        let label = norm(first);
        let kind = classify_heading(&label, false);
        let value = rest.join("\n");
        let mut section = vec![format!("## {label}")];
        match kind {
            Section::EndConditions | Section::End | Section::Profile => {
                section.extend(items(&value).into_iter().map(|i| format!("- {i}")));
            }
            Section::Closing | Section::Opening => {
                section.extend(value.lines().map(|l| format!("“{}”", l.trim())));
            }
            _ if is_callee_label(&label) => {
                if !CALLEE_HALF.iter().any(|k| label.contains(k)) {
                    // The loader knows the callee's half by its words (对方, 来电客户).
                    section[0] = format!("## 对方情况（{label}）");
                }
                section.extend(value.lines().map(|l| format!("- {}", l.trim())));
                callee.push(String::new());
                callee.append(&mut section);
                continue;
            }
            _ => section.extend(value.lines().map(|l| l.trim().to_string())),
        }
        kb_heading |= kind == Section::Kb;
        out.append(&mut section);
    }
    flush_closing(&mut out, &mut closing);
    out.append(&mut callee);
    out.push(String::new());
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::script::{Script, StepKind};

    fn load(doc: &str) -> Script {
        let s = Script::parse(doc, "sheet").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.spoken_annotations().is_empty(),
            "{:?}\n{s}",
            s.spoken_annotations()
        );
        s
    }

    /// A library's renewal hotline kept in Excel and pasted with tabs and CRLF:
    /// label rows, a steps block with unnumbered opening and closing rows, an end
    /// row and a Q&A block.
    #[test]
    fn tab_separated_sheet() {
        let doc = "城东图书馆 续借热线话术\t\t\t\t\r\n\t\t\t\t\r\n角色\t城东图书馆的续借客服小书，说话温和。\t\t\t\r\n任务\t帮读者续借到期的书，登记借书证号。\t\t\t\r\n来电读者\t多是学生和退休老人，常记不清书名。\t\t\t\r\n\t\t\t\t\r\n序号\t流程\t标准话术\t记录项\t注意事项\r\n\t开场白\t您好，城东图书馆续借热线，请问要续借哪本书？\t\t\r\n1.\t借书证号\t麻烦您报一下借书证号，在卡背面。\t借书证号\t读者报不出的，按手机号查\r\n2\t续借时长\t这次续借一个月可以吗？\t是否同意（是/否）\t\r\n\t结束语\t好的，已经给您续借了，再见。\t\t续借成功后说\r\n\t\t\t\t\r\n结束条件\t1. 已续借；2. 读者不需要续借。\t\t\t\r\n\t\t\t\t\r\n客户问题\t标准答复\t\t\t\r\n能续借几次？\t每本书可以续借两次。\t\t\t\r\n逾期要罚款吗？\t每天一角钱。\t\t\t\r\n";
        let s = load(doc);
        assert_eq!(s.role, "城东图书馆的续借客服小书，说话温和。", "{s}");
        assert_eq!(s.task, "帮读者续借到期的书，登记借书证号。", "{s}");
        assert_eq!(
            s.opening, "您好，城东图书馆续借热线，请问要续借哪本书？",
            "{s}"
        );
        let titles: Vec<&str> = s.steps.iter().map(|st| st.title.as_str()).collect();
        assert_eq!(titles, ["借书证号", "续借时长"], "{s}");
        assert_eq!(
            s.steps[0].lines,
            ["麻烦您报一下借书证号，在卡背面。"],
            "{s}"
        );
        assert_eq!(s.steps[0].collects, ["借书证号"], "{s}");
        assert_eq!(s.steps[0].directions, ["读者报不出的，按手机号查"], "{s}");
        assert_eq!(s.steps[1].kind, StepKind::Confirm, "{s}");
        assert_eq!(s.closing, ["好的，已经给您续借了，再见。"], "{s}");
        assert_eq!(s.end_conditions, ["已续借", "读者不需要续借"], "{s}");
        let qs: Vec<&str> = s.kb.iter().map(|q| q.question.as_str()).collect();
        assert_eq!(qs, ["能续借几次？", "逾期要罚款吗？"], "{s}");
        assert_eq!(
            s.persona.behaviours,
            ["多是学生和退休老人，常记不清书名。"],
            "{s}"
        );
    }

    /// The same kind of sheet from a fixed-width export: columns apart by runs of
    /// spaces, empty cells as blank columns.
    #[test]
    fn space_separated_sheet() {
        let doc = "角色      游泳馆前台小鱼。
任务      确认会员的游泳课时间。

步骤  环节      坐席话术                          采集信息    说明
      开场白    您好，这里是蓝湾游泳馆。
1     上课时间  您这周哪天有空来上课？            上课日期    会员说没空的，问下周
2     人数      这次几位一起来？                  人数

问题              回答
要带泳帽吗？      要带，馆里也有卖。
";
        let s = load(doc);
        assert_eq!(s.opening, "您好，这里是蓝湾游泳馆。", "{s}");
        let titles: Vec<&str> = s.steps.iter().map(|st| st.title.as_str()).collect();
        assert_eq!(titles, ["上课时间", "人数"], "{s}");
        assert_eq!(s.steps[0].lines, ["您这周哪天有空来上课？"], "{s}");
        assert_eq!(s.steps[0].collects, ["上课日期"], "{s}");
        assert_eq!(s.steps[0].directions, ["会员说没空的，问下周"], "{s}");
        assert_eq!(s.steps[1].collects, ["人数"], "{s}");
        assert_eq!(s.kb.len(), 1, "{s}");
        assert_eq!(s.kb[0].answer, "要带，馆里也有卖。", "{s}");
    }

    /// A cell holding two lines, quoted the way Excel quotes it: a branch with its
    /// line and a note, never said.
    #[test]
    fn quoted_multi_line_cell() {
        let doc = "角色\t花店的订花客服小花。\r\n任务\t登记送花地址。\r\n\r\n序号\t环节\t话术\t需记录\t备注\r\n1\t送花地址\t花送到哪个地址？\t送花地址\t\"若客户说要匿名：“好的，卡片上不写您的名字。”然后在备注里标匿名。\n地址不全的，问清门牌号。\"\r\n2\t送花时间\t您希望几点送到？\t送花时间\t\r\n";
        let s = load(doc);
        assert_eq!(s.steps.len(), 2, "{s}");
        let st = &s.steps[0];
        assert_eq!(st.lines, ["花送到哪个地址？"], "{s}");
        assert_eq!(st.conditionals.len(), 1, "{s}");
        assert_eq!(st.conditionals[0].condition, "若客户说要匿名", "{s}");
        assert_eq!(st.conditionals[0].line, "好的，卡片上不写您的名字。", "{s}");
        assert_eq!(
            st.directions,
            ["然后在备注里标匿名。", "地址不全的，问清门牌号。"],
            "{s}"
        );
    }

    /// A document without a steps header row is not a sheet.
    #[test]
    fn prose_is_not_a_sheet() {
        assert!(super::sheet_as_markdown("角色\t小王\n任务\t回访\n1. 问好\n").is_none());
    }
}
