//! Outline layer of the call-script loader: scripts exported from a mind-map or
//! outliner (XMind, 幕布, a nested bullet list) mark their structure only by
//! indentation. A top-level node is a section (`- 流程`, `- 常见问题`), a node under
//! the steps section is a step (`\t- 第1步 问清需求`), the nodes under a step are its
//! lines, records and conditions, and under the Q&A a node is a question whose
//! child node is the answer. This layer rewrites such a document, line for line,
//! as the Markdown the loader reads, so error line numbers still point at the
//! document.

use super::script::{classify_heading, Section};

/// A node of the outline: its depth and its text without the bullet.
struct Node<'a> {
    depth: usize,
    text: &'a str,
}

/// Bullets an outline export puts before each node.
const BULLETS: &[&str] = &["- ", "• ", "· ", "* ", "+ ", "◦ ", "▪ "];

/// The node on `line`, if it is one: indentation in tabs or in units of `unit`
/// spaces (a tab counts as one level), then a bullet.
fn node(line: &str, unit: usize) -> Option<Node<'_>> {
    let body = line.trim_start_matches([' ', '\t']);
    let indent = &line[..line.len() - body.len()];
    let tabs = indent.chars().filter(|c| *c == '\t').count();
    let spaces = indent.chars().filter(|c| *c == ' ').count();
    let text = BULLETS.iter().find_map(|b| body.strip_prefix(b))?.trim();
    (!text.is_empty()).then_some(Node {
        depth: tabs + spaces / unit.max(1),
        text,
    })
}

/// The indentation unit of space-indented nodes: the smallest indentation used.
fn space_unit(lines: &[&str]) -> usize {
    lines
        .iter()
        .filter_map(|l| {
            let n = l.len() - l.trim_start_matches(' ').len();
            (n > 0 && !l.trim_start().is_empty()).then_some(n)
        })
        .min()
        .unwrap_or(2)
}

/// The document rewritten as Markdown when it is an outline: most of its lines
/// are bullet nodes, at two or more depths, and a top-level node names the steps.
pub(super) fn outline_as_markdown(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let unit = space_unit(&lines);
    let nodes: Vec<Option<Node>> = lines.iter().map(|l| node(l, unit)).collect();
    let content = lines.iter().filter(|l| !l.trim().is_empty()).count();
    let bulleted = nodes.iter().flatten().count();
    let deep = nodes.iter().flatten().filter(|n| n.depth >= 2).count();
    let steps_node = nodes.iter().flatten().any(|n| {
        n.depth == 0 && short_title(n.text) && classify_heading(n.text, false) == Section::Steps
    });
    if bulleted < 8 || bulleted * 10 < content * 7 || deep < 3 || !steps_node {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut section = Section::Unknown;
    let mut step = 0usize;
    let mut titled = false;
    for (line, n) in lines.iter().zip(&nodes) {
        let Some(n) = n else {
            // The export's first line names the document.
            let t = line.trim();
            if !t.is_empty() && !titled && out.iter().all(|l| l.is_empty()) {
                titled = true;
                out.push(format!("# {t}"));
            } else {
                out.push(line.to_string());
            }
            continue;
        };
        let t = n.text;
        match n.depth {
            0 => {
                // "- 角色：坐席小泉…": a section title with its text on the node.
                if let Some((label, rest)) = t.split_once(['：', ':']).filter(|(l, r)| {
                    short_title(l)
                        && !r.trim().is_empty()
                        && matches!(
                            classify_heading(l, false),
                            Section::Role | Section::Task | Section::EndConditions
                        )
                }) {
                    section = classify_heading(label, false);
                    out.push(format!("**{label}：** {}", rest.trim()));
                } else {
                    section = classify_heading(t, false);
                    out.push(format!("## {t}"));
                }
            }
            1 if section == Section::Steps => {
                step += 1;
                out.push(format!("### {t}"));
            }
            1 if section == Section::Kb => out.push(format!("问：{t}")),
            2 if section == Section::Kb => out.push(format!("答：{t}")),
            _ => out.push(format!("- {t}")),
        }
    }
    (step > 0).then(|| out.join("\n"))
}

/// A node short and plain enough to be a section title ("流程", "常见问题").
fn short_title(t: &str) -> bool {
    let n = t.chars().count();
    (1..=12).contains(&n) && !t.contains(['，', '。', '？', '“', '"', '、'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::Script;

    /// A tutoring school's trial-lesson line, exported from an outliner with
    /// two-space indentation.
    const OUTLINE: &str = "试听课预约话术（大纲导出）
- 角色
  - 启明书院前台“小启”，说话亲切
- 开场
  - 话术：您好，启明书院，我是小启，请问想给孩子约哪门课的试听？
- 流程
  - 第1步 科目
    - 话术：请问孩子想试听哪一门，数学、英语还是语文？
    - 记录：科目
  - 第2步 年级
    - 话术：孩子现在上几年级？
    - 记录：年级
    - 如果家长说还没上学：我们最小从一年级开始收，等孩子上学了欢迎再来。
  - 第3步 时间
    - 话术：试听课周六周日上午都有，您看哪天方便？
    - 记录：试听时间
- 结束语
  - 好的，已经给您约上了，到时候见！
- 常见问题
  - 试听要钱吗？
    - 第一节试听课免费，不用带任何东西。
  - 在哪里上课？
    - 在文华路88号三楼，地铁站出来就到。";

    #[test]
    fn an_outline_loads_as_sections_steps_and_qa() {
        let md = outline_as_markdown(OUTLINE).expect("an outline");
        assert_eq!(md.lines().count(), OUTLINE.lines().count(), "line for line");
        let s = Script::parse(OUTLINE, "outline").expect("loads");
        assert_eq!(s.steps.len(), 3);
        assert!(s.opening.contains("启明书院"), "{}", s.opening);
        assert_eq!(s.kb.len(), 2);
        assert!(s.kb[1].answer.contains("文华路"), "{:?}", s.kb[1]);
        assert!(
            s.closing.iter().any(|c| c.contains("约上了")),
            "{:?}",
            s.closing
        );
        assert!(
            s.steps[1].lines.iter().all(|l| !l.contains("我们最小")),
            "the condition's line is said only under it: {:?}",
            s.steps[1].lines
        );
    }

    #[test]
    fn a_bulleted_step_list_is_not_an_outline() {
        let md = "## 流程\n1. **身份**\n- “您好，请问是王先生吗？”\n- 若对方不是本人：“打扰了。”\n";
        assert!(outline_as_markdown(md).is_none());
    }
}
