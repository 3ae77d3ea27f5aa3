//! Tolerant loader for 话术 call-script documents (Markdown).
//!
//! The format is the one our users write: an agent half (role, core task, what
//! we know of the callee, numbered steps with lines, Q&A knowledge base, opening,
//! end conditions and closing lines) and a callee half (role, background,
//! concerns, behaviours, reply examples, end conditions). Real documents vary in
//! heading levels, quote styles, bold or plain labels and numbering, so the
//! loader recognises sections by keywords, not exact text, fills sensible
//! defaults with a warning when something is missing, and only fails when there
//! are no steps at all. Documents exported from Word, call-robot platforms or
//! spreadsheets (titles between `====` rulers, `■` chapters, `>>> 节点1：…` or
//! `话术一｜…` steps) first go through the layout layer (`script_layout.rs`),
//! which rewrites their titles as the headings read here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;
use serde::Serialize;

use super::script_cards;
use super::script_layout;
use super::script_model_call;
use super::script_outline;
use super::script_sheet;
use super::script_slides;
use super::script_sop;
use super::script_table;
use super::text::{extract_speech, has_quote, strip_markup, strip_parens};
use super::DialogueError;

/// How script writers name the callee in conditions and directions ("客户说…",
/// "若读者…", "告诉家长…"), as a regex alternation: one list for the condition
/// lines, the layout layer's branch forms and the third-person test.
macro_rules! callee_words {
    () => {
        "客户|用户|对方|读者|家长|患者|车主|业主|学员|会员|顾客|来电人"
    };
}
pub(super) use callee_words;

/// What a step expects from the callee after its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Information; any acknowledgement moves on.
    Statement,
    /// Identity / "is now a good time?"; 不方便 leads to a callback offer.
    Convenience,
    /// A yes/no confirmation.
    Confirm,
    /// Asks for opinions; the reply is recorded verbatim.
    Feedback,
    /// Asks about special needs (night shifts, key tasks); recorded verbatim.
    SpecialNeed,
    /// "Any other questions?"; questions are answered and asked again.
    AnyQuestions,
    /// Asks for a piece of information (order number, address); recorded verbatim.
    Info,
}

/// The kind of value an information step collects, so the engine can pick it out
/// of a sentence ("你记一下我的手机号，138…") and check corrections against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Mobile or landline number.
    Phone,
    /// A date and time (parsed with the callback-time parser).
    Time,
    /// A postal address (kept as said, corrections patched in).
    Address,
    /// Serial / model / order numbers: letters and digits as heard.
    Serial,
    /// A person's name (就诊人叫什么名字).
    Name,
    /// A quantity (里程多少公里, 几个人), as a plain number.
    Number,
    /// A free-text need or description.
    Text,
}

/// Guesses the field a step collects from its title and line.
pub fn field_kind(title: &str, text: &str) -> Option<FieldKind> {
    // What a placeholder is called ({{姓名}}) says nothing about what is asked.
    let text = placeholder_re().replace_all(text, "");
    let has = |ks: &[&str]| ks.iter().any(|k| title.contains(k) || text.contains(k));
    // 手机 alone is the handset (您的手机是什么情况, 手机的型号): only its number is
    // a phone field.
    let handset_number = || {
        [title, text.as_ref()].iter().any(|t| {
            t.match_indices("手机").any(|(i, m)| {
                let after: String = t[i + m.len()..].chars().take(4).collect();
                after.starts_with('号') || after.contains("多少")
            })
        })
    };
    if (has(&["电话", "号码", "联系方式"]) || handset_number()) && !has(&["编号"]) {
        Some(FieldKind::Phone)
    } else if has(&[
        "编号",
        "序列号",
        "型号",
        "订单号",
        "工单号",
        "单号",
        "账号",
        "户号",
        "卡号",
        "客户号",
        "合同号",
        "会员号",
        "版本",
        "病历号",
        "证件号",
        "身份证号",
        // 学员证号, 会员证号: the number on a card.
        "证号",
        // "AX两个字母加六位数字": a code described by its letters.
        "字母",
    ]) || (has(&["开头"]) && has(&["位数字", "位数"]))
    {
        Some(FieldKind::Serial)
    } else if has(&[
        "地址",
        "住址",
        "门牌",
        "住在哪",
        "房号",
        "几幢",
        "几栋",
        "几单元",
        "几号房",
        "几号楼",
    ]) {
        Some(FieldKind::Address)
    } else if has(&[
        "哪一年",
        "哪年",
        "几几年",
        "购买时间",
        "购买日期",
        "买了几年",
        "用了几年",
    ]) || (has(&["时间", "什么时候", "日期"]) && has(&["买的", "购买", "装的", "安装的"]))
    {
        // "这台机器是哪一年买的？": a date in the past, said as the caller says it
        // ("前年", "2019年"), not an appointment.
        Some(FieldKind::Text)
    } else if has(&["时间", "哪天", "哪一天", "几点", "日期", "什么时候"]) {
        Some(FieldKind::Time)
    } else if has(&["姓名", "怎么称呼", "贵姓", "叫什么"]) || names_a_person(&text) {
        Some(FieldKind::Name)
    } else if asks_quantity(title) || asks_quantity(&text) {
        // A count or reading alone is a number; one recorded together with what it
        // counts (药品名称、规格、数量) is said as a description ("二甲双胍，五百毫克的，
        // 两盒"), free text.
        if counts_only(title) && counts_only(&text) {
            Some(FieldKind::Number)
        } else {
            Some(FieldKind::Text)
        }
    } else if has(&["问题", "故障", "情况", "需求", "症状", "原因"]) {
        Some(FieldKind::Text)
    } else {
        None
    }
}

/// Words that ask for or record a count, an amount or a reading.
const QUANTITY_WORDS: &[&str] = &[
    "多少公里",
    "里程",
    "几个人",
    "几位",
    "几口人",
    "几台",
    "数量",
    "多少个",
    "多少台",
    "多大面积",
    "多少平",
    "多少度",
    "读数",
    "几只",
    "几件",
    "几箱",
    "几盒",
    "几辆",
    "只数",
    "台数",
    "件数",
];

/// Measure words a count is asked with: 几层, 多少间, 几次.
const MEASURE_WORDS: &str = "个位台口只件箱盒辆层间套次张瓶包袋块条头户部把";

/// Whether `s` asks for or records a count: a quantity word, 几 or 多少 before a
/// measure word ("一共停几层"), or a count's name (层站数, 人数).
fn asks_quantity(s: &str) -> bool {
    if QUANTITY_WORDS.iter().any(|k| s.contains(k)) {
        return true;
    }
    let chars: Vec<char> = s.chars().collect();
    chars
        .windows(2)
        .any(|w| w[0] == '几' && MEASURE_WORDS.contains(w[1]))
        || s.match_indices("多少")
            .any(|(i, _)| s[i + "多少".len()..].starts_with(|c| MEASURE_WORDS.contains(c)))
        || chars
            .windows(2)
            .any(|w| w[1] == '数' && (MEASURE_WORDS.contains(w[0]) || "站人".contains(w[0])))
}

/// Words that name or describe a thing rather than count it.
const DESCRIBING_WORDS: &[&str] = &[
    "名称",
    "品名",
    "药名",
    "品牌",
    "规格",
    "品种",
    "种类",
    "类型",
    "款式",
    "颜色",
    "尺码",
    "口味",
    "描述",
    "内容",
    "明细",
    "用途",
    "什么药",
    "品类",
    "哪种",
    "哪款",
    "哪些",
];

/// `s` asks for or records quantities only: "几个人" or "人数、台数", not
/// "药品名称、规格、数量", "药名和数量" or "哪种口味，几个人吃".
fn counts_only(s: &str) -> bool {
    if DESCRIBING_WORDS.iter().any(|k| s.contains(k)) {
        return false;
    }
    // Parts of a quantity: "次数", "多少", "几", an amount or reading.
    const COUNTS: &[&str] = &[
        "数", "多少", "几", "金额", "读数", "面积", "重量", "公里", "平方", "余额",
    ];
    s.split(['，', '。', '？', '！', '；', ',', '?', '!', ';', '\n'])
        .filter(|clause| asks_quantity(clause))
        .all(|clause| {
            clause
                .split(['、', '/', '／'])
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .all(|item| {
                    COUNTS
                        .iter()
                        .chain(QUANTITY_WORDS)
                        .any(|k| item.contains(k))
                })
        })
}

/// A record of a yes or no only: "是否确认（是／否）", "是否本人"; not "是否规律服药
/// （是／否）；漏服的原因", which records a reason too.
fn records_yes_no(c: &str) -> bool {
    c.split(['；', ';', '，', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .all(|p| {
            p.starts_with("是否") || ["是／否", "是/否", "是或否"].iter().any(|k| p.contains(k))
        })
}

/// A line said only under a condition, e.g. 若对方不方便：“…”.
#[derive(Debug, Clone, Serialize)]
pub struct Conditional {
    pub condition: String,
    pub line: String,
    /// The document says the call ends after this line ("…”本次不预约，结束通话").
    pub ends_call: bool,
}

/// A note after a branch's words that ends the call there.
fn ends_the_call(notes: &[String]) -> bool {
    notes.iter().any(|n| {
        ["结束通话", "不预约", "本次不", "挂断", "挂机", "结束本次"]
            .iter()
            .any(|w| n.contains(w))
    })
}

/// One numbered step of the flow.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based number as written (or position when unnumbered).
    pub number: usize,
    pub title: String,
    /// Lines said in order when the step starts.
    pub lines: Vec<String>,
    pub conditionals: Vec<Conditional>,
    /// Stage directions for the agent (（用户已说明时直接进入下一步）, 注意：…):
    /// instructions, never words to say.
    pub directions: Vec<String>,
    /// What the script says the step records (收集：供热户号（8位）, 【收集】…): never
    /// said; it tells the value's kind when the line to say does not.
    pub collects: Vec<String>,
    pub kind: StepKind,
    /// What the step collects, when it asks for (or confirms) a value.
    pub field: Option<FieldKind>,
    /// False for steps marked 不可打断 / 法律声明: barge-in must not cut them.
    pub interruptible: bool,
    /// Source line of the step title (1-based).
    pub source_line: usize,
}

impl Step {
    /// Stable id used in records and actions: the step number.
    pub fn id(&self) -> String {
        self.number.to_string()
    }
    /// The main line: all unconditional lines joined.
    pub fn text(&self) -> String {
        self.lines.join("")
    }
    /// The conditional line whose condition mentions any of `keys`.
    pub fn conditional(&self, keys: &[&str]) -> Option<&str> {
        self.conditionals
            .iter()
            .find(|c| keys.iter().any(|k| c.condition.contains(k)))
            .map(|c| c.line.as_str())
    }
}

/// One Q&A knowledge-base entry.
#[derive(Debug, Clone, Serialize)]
pub struct QaEntry {
    pub question: String,
    pub answer: String,
    pub source_line: usize,
}

/// The callee half: what the simulator builds its persona from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Persona {
    pub role: String,
    pub background: Vec<String>,
    pub concerns: Vec<String>,
    pub behaviours: Vec<String>,
    pub good_examples: Vec<String>,
    pub bad_examples: Vec<String>,
    pub end_conditions: Vec<String>,
}

impl Persona {
    pub fn is_empty(&self) -> bool {
        self.role.is_empty()
            && self.background.is_empty()
            && self.concerns.is_empty()
            && self.behaviours.is_empty()
            && self.good_examples.is_empty()
    }
}

/// A parsed call script.
#[derive(Debug, Clone, Serialize)]
pub struct Script {
    pub source: String,
    pub role: String,
    pub task: String,
    pub profile: Vec<String>,
    pub callee_name: Option<String>,
    /// Polite form of address, e.g. 刘老师 / 张先生.
    pub honorific: Option<String>,
    pub opening: String,
    pub steps: Vec<Step>,
    pub kb: Vec<QaEntry>,
    pub end_conditions: Vec<String>,
    pub closing: Vec<String>,
    pub persona: Persona,
    /// Dates written in the document (2025年1月1日 or 2025-01-01).
    pub dates: Vec<NaiveDate>,
    /// `{{name}}` placeholders used in lines.
    pub placeholders: BTreeSet<String>,
    pub warnings: Vec<String>,
}

/// Default closing line when the document has none.
const DEFAULT_CLOSING: &str = "感谢您的接听，祝您生活愉快，再见。";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Role,
    Task,
    Profile,
    Steps,
    Kb,
    Opening,
    End,
    Closing,
    EndConditions,
    PRole,
    PBackground,
    PConcerns,
    PBehaviours,
    PExamples,
    PEnd,
    Unknown,
}

struct Heading {
    line: usize,
    level: usize,
    text: String,
}

pub(super) fn re(pat: &'static str, cell: &'static OnceLock<Regex>) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).unwrap_or_else(|e| panic!("static regex {pat}: {e}")))
}

pub(super) fn heading_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"^\s{0,3}(#{1,6})\s*(.*?)\s*#*\s*$", &C)
}
/// What a flowchart export needs before it can run.
const FLOWCHART_FIX: &str = "this reads as a flowchart export ([N1] nodes with \"→ 转 N3\" jump rules), and the engine runs steps in order: it cannot follow jumps between nodes yet. Write the main path as numbered steps under a steps section (### 通话流程, then \"1. **登记信息**\" with its line) and each jump rule as a branch of its step (- 如果客户要停卡：“…”)";

/// The line of a flowchart export's first node: three or more `[N1] 开场` /
/// `【N2】` nodes and two or more jumps (`→ 转 N4`, `跳转 N9`) to them.
fn flowchart_node(lines: &[String]) -> Option<usize> {
    static NODE: OnceLock<Regex> = OnceLock::new();
    static JUMP: OnceLock<Regex> = OnceLock::new();
    let node = re(r"^\s*[\[【]\s*[A-Za-z]{0,2}[0-9]{1,3}\s*[\]】]", &NODE);
    let jump = re(
        r"(?:转|跳转|跳到|→)\s*(?:至|到)?\s*[A-Za-z]{1,2}[0-9]{1,3}",
        &JUMP,
    );
    let nodes: Vec<usize> = (0..lines.len())
        .filter(|&i| node.is_match(&lines[i]))
        .collect();
    let jumps = lines.iter().filter(|l| jump.is_match(l)).count();
    (nodes.len() >= 3 && jumps >= 2).then(|| nodes[0])
}

/// A bold label with its text on the same line: `**角色：** …` or `**角色**：…`.
fn label_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^\s*\*\*\s*([^*：:]{1,8}?)\s*(?:[：:]\s*\*\*|\*\*\s*[：:])\s*(\S.*)$",
        &C,
    )
}
/// A section title on a plain line: `五、通话步骤`, `3. 常见问题`, `【开场白】`.
pub(super) fn plain_heading_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:(?:[一二三四五六七八九十]{1,3}|\d{1,2})\s*[、．.]\s*(\S.{0,15})|【(\S.{0,15})】)$",
        &C,
    )
}

/// A plain bulleted role or task label: `- 角色：…`, `核心任务：…`, `通话目标：…`,
/// `本次目标：…`, `本次通话要办成的事：…`, `坐席要做的事：…`.
fn plain_label_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^\s*(?:[-*•·]\s*)?((?:外呼|坐席|客服|我方)?(?:核心)?(?:角色|人设|任务|身份)(?:设定|定位)?|(?:通话|服务|外呼|来电)(?:目标|目的)|(?:本次|此次|这次)(?:通话|服务|外呼|来电)?(?:目标|目的|任务)|(?:本次|此次|这次|这通|通话|电话|外呼|来电|坐席|客服|我们|我方)+要(?:办成|做成|做|完成|办好|办)的事(?:情)?)\s*[：:]\s*(\S.*)$",
        &C,
    )
}
pub(super) fn step_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    // "Step 1 / 第一步　核对身份", "Step 2：…": an English step label, alone or
    // before the Chinese one, as bilingual Word templates write it.
    re(
        r"^(?:(?i:step)\s*\d{1,2}\s*(?:[/／|｜]\s*第\s*[0-9一二三四五六七八九十]+\s*步\s*[：:、.]?|[：:、.．]|\s)|[（(]\s*[0-9一二三四五六七八九十]{1,2}\s*[)）]|\d{1,2}\s*[\.、\)）．]|[①-⑳❶-❿➀-➉]\s*[、．.：:]?|[一二三四五六七八九十]{1,3}\s*[、．]|【\s*(?:步骤|第)?\s*[0-9一二三四五六七八九十]+\s*步?\s*】\s*[：:]?|第\s*[0-9一二三四五六七八九十]+\s*步\s*[：:、.]?|步骤\s*[0-9一二三四五六七八九十]+\s*[：:、.]?)\s*(.*)$",
        &C,
    )
}
fn numbered_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*[\.、\)）．]|^[①-⑳❶-❿➀-➉]|^[（(]\s*[0-9一二三四五六七八九十]{1,2}\s*[)）]|^第\s*[0-9一二三四五六七八九十]+\s*步|^步骤|^(?i:step)\s*\d",
        &C,
    )
}
fn bullet_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"^\s*(?:[-*+•·]|\d{1,2}[\.、\)）])\s+(.*)$", &C)
}
pub(super) fn q_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    // 客户问：/ 用户问：/ 来电问： name who asks, as call-centre Q&A often does;
    // 标准问1： and 【Q01】 are how call-robot platforms and Word templates write it.
    re(
        r"^(?:(?:客户|用户|顾客|来电人?|居民|业主|车主|患者|标准)\s*)?(?:[【\[]\s*(?i:q|问题|问|提问)\s*\d*\s*[】\]]\s*[:：]?|(?i:q|问题|问|提问)\s*\d*\s*[:：、.]|(?i:q|问题)\s*\d{1,3}\s+)\s*(.*)$",
        &C,
    )
}
/// An answer label: `答：`, `A1：`, `【A01】`, `回复：`, and `口径：` / `答复口径：`, the
/// call centre's word for the agreed answer.
pub(super) fn a_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:(?:坐席|客服|标准|参考|建议|统一|答复|回答|回复)\s*)?(?:[【\[]\s*(?i:a|答复|回答|回复|应答|答|口径)\s*\d*\s*[】\]]\s*[:：]?|(?i:a|答复|回答|回复|应答|答|口径)\s*\d*\s*[:：、.]|(?i:a)\s*\d{1,3}\s+)\s*(.*)$",
        &C,
    )
}
/// `{{姓名}}`, and the single-brace `{读者姓名}` / `${name}` that other tools write:
/// a name of up to 12 letters or Chinese characters in braces.
fn placeholder_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"\{\{\s*([^{}]+?)\s*\}\}|\$?\{\s*([\p{Han}A-Za-z_][\p{Han}\w]{0,11})\s*\}",
        &C,
    )
}

/// The variable a [`placeholder_re`] match names.
fn placeholder_name<'a>(c: &regex::Captures<'a>) -> &'a str {
    c.get(1)
        .or_else(|| c.get(2))
        .map_or("", |m| m.as_str().trim())
}
fn date_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"(\d{4})\s*(?:年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?|[-/.](\d{1,2})[-/.](\d{1,2}))",
        &C,
    )
}
fn condition_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        concat!(
            r"^[（(]?\s*((?:若|如果|如|假如|假设|当|万一|如遇|遇到|",
            callee_words!(),
            r")[^“「『\x22：:]{0,30}?)\s*[)）]?\s*[:：]\s*(.*)$"
        ),
        &C,
    )
}

/// Normalises a heading or label for keyword classification.
pub(super) fn clean_heading(s: &str) -> String {
    let marked = strip_markup(s);
    let mut s = strip_parens(&marked);
    if s.is_empty() {
        // A heading that is all brackets ("## 【流程】") names its section inside them.
        s = marked.replace(['【', '】', '[', ']', '（', '）', '(', ')'], " ");
    }
    let s = s.trim_start_matches(|c: char| {
        c.is_ascii_digit() || "一二三四五六七八九十、.．)）｜| ".contains(c)
    });
    s.trim_start_matches(['·', '•', '-', '—', ' '])
        .trim_end_matches(['：', ':', ' '])
        .to_string()
}

pub(super) fn classify_heading(text: &str, callee_half: bool) -> Section {
    let t = clean_heading(text);
    let has = |ks: &[&str]| ks.iter().any(|k| t.contains(k));
    if callee_half {
        if has(&[
            "回复风格",
            "示例",
            "说话风格",
            "语言风格",
            "话术风格",
            "教材",
        ]) {
            Section::PExamples
        } else if has(&["结束"]) {
            Section::PEnd
        } else if has(&["关切", "关注", "顾虑", "诉求", "痛点", "担心", "疑虑"]) {
            Section::PConcerns
        } else if has(&["行为", "表现", "习惯", "反应"]) {
            Section::PBehaviours
        } else if has(&["背景", "经历", "情境", "信息"]) {
            Section::PBackground
        } else if has(&["角色", "身份", "人设"]) {
            Section::PRole
        } else {
            Section::Unknown
        }
    } else if has(&[
        "开场",
        "开头这么说",
        "开头语",
        "开头话术",
        "开头怎么说",
        "第一句",
    ]) {
        Section::Opening
    } else if has(CLOSING_LABELS) && has(&["条件"]) {
        Section::End
    } else if has(CLOSING_LABELS) || has(&["告别", "挂电话前", "挂机前", "挂断前"]) {
        Section::Closing
    } else if has(END_CONDITION_LABELS) {
        Section::EndConditions
    } else if has(&["结束", "收尾", "挂机"]) {
        Section::End
    } else if has(&[
        "问答",
        "知识库",
        "faq",
        "FAQ",
        "常见问题",
        "Q&A",
        "QA",
        "常见疑问",
        "常问",
        "常见问",
        "疑问解答",
        "问与答",
        "可能会问",
        "可能问",
        "会问到",
    ]) {
        Section::Kb
    } else if has(&[
        "画像",
        "客户信息",
        "掌握",
        "客户资料",
        "对方信息",
        "已知信息",
        "用户信息",
        "收件人信息",
        "业主信息",
        "车主信息",
        "客户档案",
    ]) || names_callee_data(&t)
    {
        Section::Profile
    } else if has(&["流程", "话术", "步骤", "环节"]) {
        Section::Steps
    } else if scene_title_re().is_match(&t) {
        // 场景说明, 背景介绍, 任务背景: the scene the agent works in, which is where
        // these documents describe the agent (任务背景 is not the task itself).
        Section::Role
    } else if has(&[
        "坐席是谁",
        "客服是谁",
        "我们是谁",
        "我是谁",
        "坐席介绍",
        "坐席身份",
    ]) {
        Section::Role
    } else if has(&["任务", "目标", "目的"]) || has(TASK_PHRASES) {
        Section::Task
    } else if has(&[
        "角色",
        "身份",
        "人设",
        "基础设置",
        "坐席设定",
        "坐席设置",
        "外呼说明",
        "通话说明",
    ]) {
        Section::Role
    } else {
        Section::Unknown
    }
}

/// Words that name data held about someone (资料, 信息, 档案) or brought in by
/// the system (系统带入), not a description of how they behave.
const DATA_WORDS: &[&str] = &["资料", "信息", "档案", "数据", "系统带入", "系统导入"];

/// A title naming the callee's data ("被叫人资料（系统带入）", "被叫方信息"): what we
/// know of the callee, the profile, not the callee's half of the document.
fn names_callee_data(title: &str) -> bool {
    let plain = strip_parens(title);
    (DATA_WORDS.iter().any(|k| title.contains(k)))
        && CALLEE_HALF.iter().any(|k| plain.contains(k))
        && !["画像", "人设", "角色", "行为", "性格"]
            .iter()
            .any(|k| title.contains(k))
}

/// "…要办成的事", "坐席要做的事": the task said as what the call must get done.
const TASK_PHRASES: &[&str] = &[
    "要办成的事",
    "要办成什么",
    "要做成什么",
    "要办什么",
    "要做的事",
    "要完成的事",
    "要办的事",
    "要办好的事",
];

/// A title that names the scene or background as a whole: 场景, 场景说明, 背景介绍,
/// 任务背景, 项目背景与要求. Not one that names a particular scene (特殊场景处理)
/// or someone's background (客户背景).
fn scene_title_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^(?:任务|项目|业务|通话|服务|活动|工作|使用)?(?:场景|背景)(?:说明|介绍|描述|概述|简介|信息)?(?:\s*[与和及、/&＆].*)?$",
        &C,
    )
}

/// Marks that set off a question in a Q&A list written without 问： labels.
const QUESTION_MARKERS: &[char] = &[
    '◎', '●', '○', '◆', '◇', '■', '□', '★', '☆', '▶', '►', '▷', '•', '·',
];

/// Titles and labels of the closing lines (结束语, 挂机话术 on robot platforms).
pub(super) const CLOSING_LABELS: &[&str] = &[
    "结束语",
    "结束话术",
    "结语",
    "收尾语",
    "收尾话术",
    "挂机话术",
    "挂机语",
];
/// Titles and labels of the end conditions.
const END_CONDITION_LABELS: &[&str] = &[
    "结束条件",
    "挂机条件",
    "收尾条件",
    "挂断条件",
    // A team lead's words in a chat: 什么时候挂：1. …
    "什么时候挂",
    "何时挂",
    "什么情况挂",
    "什么情况下挂",
    "哪些情况挂",
];

pub(super) const AGENT_HALF: &[&str] = &[
    "拨打方",
    "坐席",
    "客服方",
    "外呼方",
    "主叫",
    "我方",
    "AI",
    "机器人",
    "客服",
];
pub(super) const CALLEE_HALF: &[&str] = &[
    "接听方",
    "被叫",
    "客户方",
    "来电方",
    "来电用户",
    "来电客户",
    "对方",
    "用户方",
    "客户侧",
    "来电人",
];

/// Markers that make a step non-interruptible.
const NON_INTERRUPTIBLE: &[&str] = &[
    "不可打断",
    "不能打断",
    "禁止打断",
    "法律声明",
    "免责声明",
    "合规声明",
    "必须完整播报",
];

fn strip_markers(s: &str) -> String {
    let mut out = s.to_string();
    for m in NON_INTERRUPTIBLE.iter().filter(|m| m.contains("打断")) {
        for wrap in [
            format!("（{m}）"),
            format!("({m})"),
            format!("【{m}】"),
            format!("[{m}]"),
        ] {
            out = out.replace(&wrap, "");
        }
    }
    out.trim().to_string()
}

/// "请留一个联系电话": a request for a value, though not a question. The value's
/// noun follows the verb closely ("当天家里留个人" asks for no value).
fn asks_to_leave_a_value(text: &str) -> bool {
    const NOUNS: &[&str] = &["电话", "号码", "联系方式", "地址", "姓名", "名字", "邮箱"];
    text.match_indices('留').any(|(i, _)| {
        // "留一个子女或者家属的电话": the noun may come a few words later.
        let near: String = text[i..].chars().take(13).collect();
        NOUNS.iter().any(|n| near.contains(n))
    })
}

/// "不方便" said of the body or of getting about, not of the time to talk.
const BODILY_INCONVENIENCE: &[&str] = &[
    "腿脚不方便",
    "行动不方便",
    "行走不方便",
    "身体不方便",
    "手脚不方便",
    "不方便上楼",
    "不方便下楼",
    "不方便走",
    "不方便出门",
    "不方便行走",
];

/// A line that asks the callee to give or do something ("麻烦您…", "请您…",
/// "…给我就行"), as opposed to one that only informs.
fn asks_for_something(text: &str) -> bool {
    [
        "麻烦您",
        "请您",
        "劳驾",
        "给我",
        "您看一下",
        "您找一下",
        "您说",
        "您念",
        "您报",
    ]
    .iter()
    .any(|k| text.contains(k))
}

/// "哪个时段方便", "哪天方便", "什么时候方便", "几点方便": a question about when.
fn when_suits_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"(?:哪|什么时|几)[^，。？?！,]{0,6}方便", &C)
}

/// Guesses what a step expects from its title and its lines.
fn step_kind(title: &str, text: &str, conditionals: &[Conditional]) -> StepKind {
    let asks =
        text.contains('？') || text.contains('?') || text.contains("吗") || text.contains("请问");
    let t_has = |ks: &[&str]| ks.iter().any(|k| title.contains(k));
    let x_has = |ks: &[&str]| ks.iter().any(|k| text.contains(k));
    if t_has(&["反馈", "意见", "建议", "评价", "满意"]) && asks {
        return StepKind::Feedback;
    }
    if t_has(&[
        "特殊需求",
        "需求采集",
        "采集",
        "特殊要求",
        "风险点",
        "特殊情况",
        "注意事项",
    ]) && asks
    {
        return StepKind::SpecialNeed;
    }
    // "请问您是{{姓名}}本人吗？": the identity question the opening usually asks too.
    let asks_identity = x_has(&["本人吗", "本人么"])
        || [
            "姓名",
            "名字",
            "称呼",
            "客户",
            "用户",
            "车主",
            "收件人",
            "机主",
        ]
        .iter()
        .any(|n| text.contains(&format!("是{{{{{n}}}}}")) || text.contains(&format!("是{{{n}}}")))
            && asks;
    if asks_identity
        || t_has(&["方便", "身份确认", "身份核实", "确认身份"])
        || conditionals
            .iter()
            .any(|c| c.condition.contains("方便") || c.condition.contains("忙"))
    {
        return StepKind::Convenience;
    }
    let asks_value = x_has(&[
        "报给我",
        "告诉我",
        "说一下",
        "报一下",
        "是多少",
        "哪个",
        "哪天",
        "哪一天",
        "什么时间",
        "哪里",
    ]) || asks_to_leave_a_value(text);
    if !asks && !asks_value {
        return StepKind::Statement;
    }
    if x_has(&[
        "有什么可以帮",
        "有什么能帮",
        "什么问题",
        "还有什么问题",
        "还有其他问题",
        "还有别的问题",
        "有什么疑问",
        "还有什么疑问",
        "其他问题",
        "还有什么想问",
        "还有什么要问",
        "还有别的要问",
        "还有什么不清楚",
        "还有什么不明白",
    ]) {
        return StepKind::AnyQuestions;
    }
    if x_has(&["意见", "建议", "未覆盖", "反馈", "评价", "满意"]) {
        return StepKind::Feedback;
    }
    if t_has(&["预约", "时间"])
        && x_has(&[
            "哪天",
            "哪一天",
            "几号",
            "什么时间",
            "几点",
            "什么时候",
            "上午还是下午",
        ])
    {
        return StepKind::Info;
    }
    if x_has(&["特殊需求", "特殊要求", "夜班", "关键任务"]) {
        return StepKind::SpecialNeed;
    }
    // A value read out for a yes/no ("上门地址是{{地址}}，对吗？"): a confirmation,
    // however the title reads (核对地址); a correction is still taken as the new value.
    let tail = text.trim_end_matches(['？', '?', '。', ' ']);
    let reads_a_value = text.contains('{') || text.chars().any(|c| c.is_ascii_digit());
    if reads_a_value
        && [
            "对吗",
            "是吗",
            "对不对",
            "对吧",
            "没错吧",
            "是不是",
            "没错吗",
        ]
        .iter()
        .any(|t| tail.ends_with(t))
    {
        return StepKind::Confirm;
    }
    if matches!(
        field_kind(title, text),
        Some(FieldKind::Name | FieldKind::Number)
    ) || t_has(&[
        "核实", "登记", "信息", "收集", "记录", "订单", "地址", "号码",
    ]) || x_has(&[
        "请告诉我",
        "请提供",
        "请您说一下",
        "报一下",
        "多少",
        "哪里",
        "地址是",
    ]) {
        return StepKind::Info;
    }
    // "留哪个号码方便？": a number, an address or a serial asked for, where 方便
    // is politeness.
    if x_has(&["哪个", "哪里", "什么", "多少"])
        && matches!(
            field_kind(title, text),
            Some(FieldKind::Phone | FieldKind::Address | FieldKind::Serial)
        )
    {
        return StepKind::Info;
    }
    // "方便的话您量一下…" is politeness and "腿脚不方便上楼" a health matter, not a
    // question about convenience.
    // "您看哪个时段方便？" / "哪天方便？" asks for a time, not whether now suits.
    let asked_when = when_suits_re().replace_all(text, "");
    if BODILY_INCONVENIENCE
        .iter()
        .fold(asked_when.replace("方便的话", ""), |t, p| {
            t.replace(p, "")
        })
        .contains("方便")
    {
        return StepKind::Convenience;
    }
    // "请问打哪个电话？", "请您具体说一下是…还是别的问题？": a value is asked for,
    // not a yes or no.
    let wh_text = text.replace("几分钟", "");
    if asks_value
        || ["什么", "多少", "哪", "几", "怎么称呼"]
            .iter()
            .any(|w| wh_text.contains(w))
    {
        return StepKind::Info;
    }
    StepKind::Confirm
}

/// Function characters: a pair of characters with one of them ("还的" in 归还的馆)
/// is grammar, not a thing a branch brings up.
const FUNCTION_CHARS: &[char] = &[
    '的', '了', '着', '吗', '呢', '吧', '是', '个', '在', '和', '就', '也', '都',
];

impl Script {
    /// Steps that exist only for an earlier step's branch: the step's title names
    /// something that only that branch's conditional line brings up (确认送货地址
    /// after "如果对方来不了：…我们可以送货上门…"), nowhere in the opening or in
    /// the lines said unconditionally before it. By step index, to the branching
    /// step's index.
    pub fn branch_only_steps(&self) -> BTreeMap<usize, usize> {
        let bigrams = |s: &str| -> Vec<String> {
            let chars: Vec<char> = s
                .chars()
                .filter(|c| crate::dialogue::text::is_han(*c))
                .collect();
            chars.windows(2).map(|w| w.iter().collect()).collect()
        };
        // Step words and the values steps collect: "地址" in "找不到户号？说一下地址也行"
        // does not make the address step a branch of its own.
        const GENERIC: &[&str] = &[
            "确认", "核对", "登记", "询问", "结束", "信息", "时间", "服务", "地址", "电话", "号码",
            "手机", "姓名", "名字", "户号", "编号", "联系",
        ];
        let mut out = BTreeMap::new();
        for j in 1..self.steps.len() {
            let said_before: String = std::iter::once(self.opening.clone())
                .chain(self.steps[..j].iter().flat_map(|s| {
                    s.lines
                        .iter()
                        .cloned()
                        .chain(std::iter::once(s.title.clone()))
                }))
                .collect();
            let own = bigrams(&self.steps[j].title);
            'steps: for i in (0..j).rev() {
                // Only a branch that offers or asks something leads to a step of its
                // own ("…您需要送上门吗？"); one that settles itself ("我给您标成加急，
                // 师傅会优先安排上门。") leads back to the main line.
                let leads_on = |l: &str| l.contains(['？', '?']) || l.contains('吗');
                for c in self.steps[i]
                    .conditionals
                    .iter()
                    .filter(|c| leads_on(&c.line))
                {
                    if own.iter().any(|b| {
                        !GENERIC.contains(&b.as_str())
                            && !b.contains(FUNCTION_CHARS)
                            && c.line.contains(b.as_str())
                            && !said_before.contains(b.as_str())
                    }) {
                        out.insert(j, i);
                        break 'steps;
                    }
                }
            }
        }
        out
    }
}

/// Splits a compound surname off a Chinese name.
fn surname(name: &str) -> String {
    const COMPOUND: &[&str] = &[
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐", "夏侯", "尉迟", "长孙",
        "公孙", "宇文", "司徒", "端木", "独孤", "南宫", "西门",
    ];
    COMPOUND
        .iter()
        .find(|c| name.starts_with(**c))
        .map(|c| c.to_string())
        .unwrap_or_else(|| name.chars().take(1).collect())
}

struct Parser {
    lines: Vec<String>,
    warnings: Vec<String>,
    /// A step label found outside any steps section (line, label).
    stray_step: Option<(usize, String)>,
    /// The opening line of a steps table's opening row (开场).
    table_opening: Option<String>,
}

impl Script {
    /// Loads and parses a script file.
    pub fn load(path: &Path) -> Result<Self, DialogueError> {
        let text = std::fs::read_to_string(path).map_err(|e| DialogueError::ScriptRead {
            path: path.display().to_string(),
            source: if e.kind() == std::io::ErrorKind::InvalidData {
                // "stream did not contain valid UTF-8" does not say what to do.
                std::io::Error::new(
                    e.kind(),
                    "it is not UTF-8 text; save the script as UTF-8 (from GBK: iconv -f GBK -t UTF-8)",
                )
            } else {
                e
            },
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a script document; `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Self, DialogueError> {
        // Page furniture goes first: a running header inside a step would be said.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        // A slide deck's page markers are its structure, not page furniture.
        let text = script_slides::slides_as_markdown(&text).unwrap_or(text);
        let text = script_layout::unpaginate(&text).unwrap_or(text);
        let text = script_layout::plain_glyphs(&text).unwrap_or(text);
        let text = script_layout::unchat(&text).unwrap_or(text);
        // Before the sheet layer: an outline's tab indentation is not a sheet's columns.
        let text = script_model_call::model_call_as_markdown(&text).unwrap_or(text);
        let text = script_sop::sop_as_markdown(&text).unwrap_or(text);
        let text = script_cards::cards_as_markdown(&text).unwrap_or(text);
        let text = script_outline::outline_as_markdown(&text).unwrap_or(text);
        let text = script_sheet::sheet_as_markdown(&text).unwrap_or(text);
        let tables = script_table::tables_as_text(&text);
        let layout = script_layout::normalise(tables.lines);
        let mut p = Parser {
            lines: layout.lines,
            warnings: layout.warnings,
            stray_step: layout.stray_step,
            table_opening: tables.opening,
        };
        p.parse(source)
    }

    /// A copy with `{{placeholders}}` filled from `vars`. Name-like keys fall back
    /// to the callee name from the profile; anything else left is an error that
    /// names the missing variable.
    pub fn with_vars(&self, vars: &BTreeMap<String, String>) -> Result<Self, DialogueError> {
        let mut values = vars.clone();
        if let Some(name) = &self.callee_name {
            for k in ["name", "姓名", "客户姓名", "callee"] {
                values.entry(k.to_string()).or_insert_with(|| name.clone());
            }
        }
        if let Some(h) = &self.honorific {
            for k in ["honorific", "称呼", "尊称"] {
                values.entry(k.to_string()).or_insert_with(|| h.clone());
            }
        }
        let missing: Vec<String> = self
            .placeholders
            .iter()
            .filter(|p| !values.contains_key(*p))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(DialogueError::MissingVars {
                source_name: self.source.clone(),
                names: missing,
            });
        }
        let fill = |s: &str| -> String {
            placeholder_re()
                .replace_all(s, |c: &regex::Captures<'_>| {
                    values.get(placeholder_name(c)).cloned().unwrap_or_default()
                })
                .into_owned()
        };
        let mut out = self.clone();
        out.opening = fill(&out.opening);
        for s in &mut out.steps {
            s.title = fill(&s.title);
            s.lines = s.lines.iter().map(|l| fill(l)).collect();
            for c in &mut s.conditionals {
                c.line = fill(&c.line);
            }
        }
        for q in &mut out.kb {
            q.question = fill(&q.question);
            q.answer = fill(&q.answer);
        }
        out.closing = out.closing.iter().map(|l| fill(l)).collect();
        // "读者姓名", "车主姓名": the callee's name under the script's own word.
        let named = values
            .get("name")
            .or_else(|| values.get("姓名"))
            .or_else(|| {
                values
                    .iter()
                    .find(|(k, _)| k.ends_with("姓名") || k.ends_with("名字"))
                    .map(|(_, v)| v)
            });
        if let Some(n) = named {
            if out.callee_name.is_none() {
                out.callee_name = Some(n.clone());
            }
        }
        out.placeholders.clear();
        Ok(out)
    }

    /// Spoken lines that still look like instructions to the agent (a bracketed
    /// aside, a quote marker, "若对方…"): the loader should have separated them.
    pub fn spoken_annotations(&self) -> Vec<String> {
        let mut lines: Vec<&String> = vec![&self.opening];
        for st in &self.steps {
            lines.extend(st.lines.iter());
            lines.extend(st.conditionals.iter().map(|c| &c.line));
        }
        lines.extend(self.closing.iter());
        lines.extend(self.kb.iter().map(|q| &q.answer));
        lines
            .into_iter()
            .filter(|l| looks_annotated(l))
            .cloned()
            .collect()
    }

    /// The structure as printed by `check-script`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = fmt::write(&mut s, format_args!("{self}"));
        s
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "script: {}", self.source)?;
        writeln!(f, "role: {}", short(&self.role, 60))?;
        writeln!(f, "task: {}", short(&self.task, 60))?;
        match (&self.callee_name, &self.honorific) {
            (Some(n), Some(h)) => writeln!(f, "callee: {n} (address as {h})")?,
            (Some(n), None) => writeln!(f, "callee: {n}")?,
            _ => writeln!(f, "callee: (not named: campaign variables)")?,
        }
        if !self.dates.is_empty() {
            let d: Vec<String> = self.dates.iter().map(|d| d.to_string()).collect();
            writeln!(f, "dates: {}", d.join(", "))?;
        }
        if !self.placeholders.is_empty() {
            let p: Vec<&str> = self.placeholders.iter().map(String::as_str).collect();
            writeln!(f, "placeholders: {}", p.join(", "))?;
        }
        writeln!(f, "opening: {}", short(&self.opening, 60))?;
        writeln!(f, "steps: {}", self.steps.len())?;
        let branch_only = self.branch_only_steps();
        for (j, s) in self.steps.iter().enumerate() {
            let flag = if s.interruptible {
                ""
            } else {
                " [不可打断]"
            };
            let only = match branch_only.get(&j) {
                Some(i) => format!(", only after step {}'s branch", self.steps[*i].number),
                None => String::new(),
            };
            let field = s.field.map(|k| format!(" → {k:?}")).unwrap_or_default();
            writeln!(
                f,
                "  {}. {} ({:?}{}{}{}, line {})",
                s.number, s.title, s.kind, field, flag, only, s.source_line
            )?;
            for l in &s.lines {
                writeln!(f, "       say: {}", short(l, 50))?;
            }
            for c in &s.conditionals {
                writeln!(f, "       if {}: {}", c.condition, short(&c.line, 40))?;
            }
            for d in &s.directions {
                writeln!(f, "       direction (not said): {}", short(d, 40))?;
            }
            for c in &s.collects {
                writeln!(f, "       records (not said): {}", short(c, 40))?;
            }
        }
        writeln!(f, "knowledge base: {} entries", self.kb.len())?;
        for q in &self.kb {
            writeln!(f, "  Q: {}", short(&q.question, 50))?;
        }
        writeln!(f, "end conditions: {}", self.end_conditions.len())?;
        writeln!(f, "closing lines: {}", self.closing.len())?;
        for c in &self.closing {
            writeln!(f, "  {}", short(c, 60))?;
        }
        writeln!(
            f,
            "callee persona: {} concerns, {} behaviours, {} good / {} bad reply examples",
            self.persona.concerns.len(),
            self.persona.behaviours.len(),
            self.persona.good_examples.len(),
            self.persona.bad_examples.len()
        )?;
        let spoken = self.spoken_annotations();
        writeln!(f, "spoken annotations: {}", spoken.len())?;
        for l in &spoken {
            writeln!(f, "  annotation in a spoken line: {}", short(l, 60))?;
        }
        if self.warnings.is_empty() {
            writeln!(f, "warnings: none")
        } else {
            writeln!(f, "warnings: {}", self.warnings.len())?;
            for w in &self.warnings {
                writeln!(f, "  warning: {w}")?;
            }
            Ok(())
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// The cells of a Markdown table row (`| a | b |`), without the separator row
/// (`| --- | --- |`); `None` for any other line.
fn table_cells(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !t.starts_with('|') || t.len() < 3 {
        return None;
    }
    let cells: Vec<String> = t
        .trim_matches('|')
        .split('|')
        .map(|c| strip_markup(c.trim()))
        .collect();
    if cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
    {
        return Some(Vec::new());
    }
    Some(cells.into_iter().filter(|c| !c.is_empty()).collect())
}

/// Content of one bullet/numbered item: text without the bullet marker.
fn item_text(line: &str) -> String {
    match bullet_re().captures(line) {
        Some(c) => c[1].trim().to_string(),
        None => line.trim().to_string(),
    }
}

impl Parser {
    fn parse(&mut self, source: &str) -> Result<Script, DialogueError> {
        let mut headings: Vec<Heading> = self
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                heading_re().captures(l).map(|c| Heading {
                    line: i,
                    level: c[1].len(),
                    text: c[2].to_string(),
                })
            })
            .collect();
        // A document title ("# 宁北热力 供热服务热线 · 坐席话术手册"): the first heading,
        // alone at a level above all the others. It names the document, not a section,
        // even when it contains a section word (话术, 流程).
        if headings.len() >= 3 && headings[1..].iter().all(|h| h.level > headings[0].level) {
            headings.remove(0);
        }
        // Plain-text documents (numbered titles such as "五、通话步骤", rulers,
        // chapter markers) had their titles rewritten as headings by the layout layer.
        let callee_start = self.find_callee_half(&headings);

        // Sections: each heading owns the lines up to the next heading; headings
        // nested under a steps section that are not sections themselves are steps.
        let mut sections: Vec<(Section, usize, Vec<usize>)> = Vec::new();
        let mut steps_level: Option<usize> = None;
        for (hi, h) in headings.iter().enumerate() {
            let callee = callee_start.is_some_and(|(line, _)| h.line >= line);
            let end = headings
                .get(hi + 1)
                .map(|n| n.line)
                .unwrap_or(self.lines.len());
            let body: Vec<usize> = (h.line + 1..end).collect();
            if callee_start.is_some_and(|(line, _)| h.line == line) {
                steps_level = None;
                // A half heading with its own text ("被叫人画像" followed by the kinds
                // of callee): the text describes the callee, as behaviours unless the
                // title names another part of the persona.
                if body.iter().any(|&i| !self.lines[i].trim().is_empty()) {
                    let kind = match classify_heading(&h.text, true) {
                        Section::Unknown => Section::PBehaviours,
                        k => k,
                    };
                    sections.push((kind, h.line, body));
                }
                continue;
            }
            let mut kind = classify_heading(&h.text, callee);
            if let Some(lv) = steps_level {
                // A step label (节点1：身份确认, 话术二｜核实账号) is a step whatever its
                // title says, except one that names the end of the call (话术六｜结束受理):
                // that is the end section, its line a closing line.
                let labelled = script_layout::is_step_label(&h.text)
                    && !matches!(
                        kind,
                        Section::End | Section::Closing | Section::EndConditions
                    );
                if h.level > lv
                    && (kind == Section::Unknown
                        || kind == Section::Steps
                        || labelled
                        || numbered_re().is_match(strip_markup(&h.text).trim()))
                    && !callee
                {
                    // A step written as a sub-heading: feed it as a numbered item.
                    if let Some(last) = sections.iter_mut().rev().find(|s| s.0 == Section::Steps) {
                        last.2.push(usize::MAX - h.line);
                        last.2.extend(body);
                    }
                    continue;
                }
                if h.level <= lv {
                    steps_level = None;
                }
            }
            if kind == Section::Steps {
                steps_level = Some(h.level);
            }
            if kind == Section::Unknown && body.iter().all(|&i| self.lines[i].trim().is_empty()) {
                // A half or group heading with no own text.
                continue;
            }
            if kind == Section::Unknown {
                // A heading like "## 电话拨打方" followed directly by text: ignore quietly
                // only when it is a half heading.
                let t = clean_heading(&h.text);
                if AGENT_HALF.iter().any(|k| t.contains(k)) {
                    continue;
                }
                self.warnings.push(format!(
                    "line {}: section \"{}\" is not recognised and was ignored (known: 角色, 核心任务, 客户画像, 分步流程和话术, 问答知识库, 开场白, 结束条件与结束语)",
                    h.line + 1,
                    clean_heading(&h.text)
                ));
                kind = Section::Unknown;
            }
            sections.push((kind, h.line, body));
        }

        let mut script = Script {
            source: source.to_string(),
            role: String::new(),
            task: String::new(),
            profile: Vec::new(),
            callee_name: None,
            honorific: None,
            opening: String::new(),
            steps: Vec::new(),
            kb: Vec::new(),
            end_conditions: Vec::new(),
            closing: Vec::new(),
            persona: Persona::default(),
            dates: Vec::new(),
            placeholders: BTreeSet::new(),
            warnings: Vec::new(),
        };
        let mut steps_heading_line = None;
        let mut role_from_scene = false;
        for (kind, hline, body) in &sections {
            match kind {
                Section::Role => {
                    script.role = self.paragraph(body);
                    role_from_scene = headings
                        .iter()
                        .find(|h| h.line == *hline)
                        .is_some_and(|h| scene_title_re().is_match(&clean_heading(&h.text)));
                }
                Section::Task => script.task = self.paragraph(body),
                Section::Profile => script.profile = self.items(body),
                Section::Steps => {
                    steps_heading_line.get_or_insert(*hline);
                    let mut steps = self.parse_steps(body, script.steps.len());
                    script.steps.append(&mut steps);
                }
                Section::Kb => {
                    let mut kb = self.parse_kb(body);
                    script.kb.append(&mut kb);
                }
                Section::Opening => script.opening = self.speech(body),
                Section::End => {
                    let (c, l) = self.parse_end(body);
                    script.end_conditions.extend(c);
                    script.closing.extend(l);
                }
                Section::Closing => {
                    // A 结束语 section may list the end conditions first (结束条件：…).
                    let (c, l) = self.parse_end_as(body, true);
                    script.end_conditions.extend(c);
                    script.closing.extend(l);
                }
                Section::EndConditions => {
                    let (c, l) = self.parse_end(body);
                    script.end_conditions.extend(c);
                    script.closing.extend(l);
                }
                Section::PRole => script.persona.role = self.paragraph(body),
                Section::PBackground => script.persona.background = self.items(body),
                Section::PConcerns => script.persona.concerns = self.items(body),
                Section::PBehaviours => script.persona.behaviours = self.items(body),
                Section::PExamples => {
                    let (good, bad) = self.parse_examples(body);
                    script.persona.good_examples = good;
                    script.persona.bad_examples = bad;
                }
                Section::PEnd => script.persona.end_conditions = self.items(body),
                Section::Unknown => {}
            }
        }

        // No headings at all or no steps section: look for numbered items anywhere.
        if script.steps.is_empty() {
            let all: Vec<usize> = (0..self.lines.len())
                .filter(|&i| callee_start.is_none_or(|(l, _)| i < l))
                // Lines of the sections read already (the Q&A, the end, the closing
                // lines, the profile) and the titles are no step's; an opening may
                // run on into numbered steps.
                .filter(|&i| {
                    !sections.iter().any(|s| {
                        matches!(
                            s.0,
                            Section::Kb
                                | Section::End
                                | Section::EndConditions
                                | Section::Closing
                                | Section::Profile
                        ) && s.2.contains(&i)
                    }) && !heading_re().is_match(&self.lines[i])
                })
                .collect();
            if steps_heading_line.is_none() {
                script.steps = self.parse_steps(&all, 0);
                if !script.steps.is_empty() {
                    self.warnings.push("no steps section heading (e.g. \"### 分步流程和话术\"): numbered items were taken as steps".into());
                }
            }
        }
        if script.steps.is_empty() {
            let (line, what) = match (steps_heading_line, &self.stray_step) {
                (Some(l), _) => (l + 1, "the steps section has no numbered steps".to_string()),
                (None, Some((l, label))) => (
                    l + 1,
                    format!(
                        "\"{label}\" reads as a step but no steps section comes before it ({})",
                        script_layout::STEPS_TITLE_FIX
                    ),
                ),
                (None, None) => match flowchart_node(&self.lines) {
                    Some(l) => (l + 1, FLOWCHART_FIX.to_string()),
                    None => (1, "no steps section found".to_string()),
                },
            };
            return Err(DialogueError::NoSteps {
                source_name: source.to_string(),
                line,
                what,
            });
        }

        // Role and task written as bold labels inside a group section
        // ("**角色：** 悦居物业的智能客服…") rather than under their own headings.
        // Also as plain bullets in one section ("- 角色：…" then "- 核心任务：…"), which
        // the section's paragraph would otherwise run together.
        let (mut labelled_role, mut labelled_task) = (None, None);
        // "身份：…" names the agent only in the agent's own sections (角色, 坐席身份与
        // 任务); in a profile it is the callee's (身份：退休教师).
        let in_agent_section = |i: usize| {
            sections
                .iter()
                .any(|(k, _, b)| matches!(k, Section::Role | Section::Task) && b.contains(&i))
        };
        for i in 0..callee_start.map_or(self.lines.len(), |(l, _)| l) {
            let line = &self.lines[i];
            let (label, text) = match label_re().captures(line) {
                Some(c) => (c[1].to_string(), c[2].trim().to_string()),
                None => match plain_label_re().captures(line) {
                    Some(c) if &c[1] != "身份" || in_agent_section(i) => {
                        (c[1].to_string(), c[2].trim().to_string())
                    }
                    _ => continue,
                },
            };
            match classify_heading(&label, false) {
                Section::Role => {
                    labelled_role.get_or_insert(text);
                }
                Section::Task => {
                    labelled_task.get_or_insert(text);
                }
                _ => {}
            }
        }
        let merged = |s: &str, other: &Option<String>| {
            other.as_ref().is_some_and(|o| s.contains(o.as_str()))
        };
        if let Some(r) = &labelled_role {
            // A labelled role (身份：…) says who the agent is better than a scene
            // or background section (背景) does.
            if script.role.is_empty() || merged(&script.role, &labelled_task) || role_from_scene {
                script.role = r.clone();
            }
        }
        if let Some(t) = labelled_task {
            if script.task.is_empty() || merged(&script.task, &labelled_role) {
                script.task = t;
            }
        }

        // Defaults and warnings.
        if script.role.is_empty() {
            self.warnings
                .push("no role section (### 角色): the agent has no self-description".into());
        }
        if script.task.is_empty() {
            self.warnings
                .push("no core task section (### 核心任务)".into());
        }
        if script.opening.is_empty() {
            if let Some(o) = self.table_opening.take() {
                script.opening = o;
            }
        }
        if script.opening.is_empty() {
            self.warnings
                .push("no opening line (### 开场白): the first step's line opens the call".into());
        }
        if script.kb.is_empty() {
            self.warnings.push(
                "no Q&A knowledge base (### 问答知识库): every question gets the holding answer"
                    .into(),
            );
        }
        if script.closing.is_empty() {
            self.warnings.push(format!(
                "no closing lines (结束语): using \"{DEFAULT_CLOSING}\""
            ));
            script.closing.push(DEFAULT_CLOSING.to_string());
        }
        if script.end_conditions.is_empty() {
            self.warnings
                .push("no end conditions (结束条件): the call ends after the last step".into());
        }
        if script.persona.is_empty() {
            self.warnings
                .push("no callee half (## 电话接听方): simulate uses a generic persona".into());
        }

        // Callee name and honorific from the profile.
        self.find_callee(&mut script);

        // Dates and placeholders anywhere in the document.
        let whole = self.lines.join("\n");
        let mut dates = BTreeSet::new();
        for c in date_re().captures_iter(&whole) {
            let y: i32 = c[1].parse().unwrap_or(0);
            let (m, d) = match (c.get(2), c.get(3), c.get(4), c.get(5)) {
                (Some(m), Some(d), _, _) | (_, _, Some(m), Some(d)) => (
                    m.as_str().parse().unwrap_or(0),
                    d.as_str().parse().unwrap_or(0),
                ),
                _ => (0, 0),
            };
            if let Some(date) = NaiveDate::from_ymd_opt(y, m, d) {
                dates.insert(date);
            }
        }
        script.dates = dates.into_iter().collect();
        for c in placeholder_re().captures_iter(&whole) {
            script.placeholders.insert(placeholder_name(&c).to_string());
        }
        if script.opening.is_empty() {
            script.opening = script.steps[0].text();
        }
        script.warnings = std::mem::take(&mut self.warnings);
        Ok(script)
    }

    fn find_callee_half(&self, headings: &[Heading]) -> Option<(usize, usize)> {
        let mut levels: BTreeMap<usize, usize> = BTreeMap::new();
        for h in headings {
            *levels.entry(h.level).or_default() += 1;
        }
        let level = levels.iter().find(|(_, n)| **n >= 2).map(|(l, _)| *l)?;
        let top: Vec<&Heading> = headings.iter().filter(|h| h.level == level).collect();
        for h in &top {
            let t = clean_heading(&h.text);
            if AGENT_HALF.iter().any(|k| t.contains(k)) || names_callee_data(&h.text) {
                continue;
            }
            // A callee section above the steps ("- 来电客户" in an outline) describes
            // the callers; the callee half comes after the agent's own sections.
            let steps_below = top
                .iter()
                .any(|o| o.line > h.line && classify_heading(&o.text, false) == Section::Steps);
            if CALLEE_HALF.iter().any(|k| t.contains(k)) && !steps_below {
                return Some((h.line, level));
            }
        }
        // Positional fallback: exactly two top sections, the second of which has
        // persona-like sub-sections.
        if top.len() == 2 {
            let second = top[1];
            let persona_like = headings
                .iter()
                .filter(|h| h.line > second.line && h.level > level)
                .any(|h| {
                    let t = clean_heading(&h.text);
                    ["背景", "行为", "回复风格", "关切", "关注"]
                        .iter()
                        .any(|k| t.contains(k))
                });
            if persona_like {
                return Some((second.line, level));
            }
        }
        None
    }

    fn paragraph(&self, body: &[usize]) -> String {
        body.iter()
            .map(|&i| item_text(&self.lines[i]))
            .map(|l| strip_markup(&l))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn items(&self, body: &[usize]) -> Vec<String> {
        body.iter()
            .map(|&i| strip_markup(&item_text(&self.lines[i])))
            .filter(|l| !l.is_empty())
            .collect()
    }

    fn speech(&self, body: &[usize]) -> String {
        let texts: Vec<String> = body
            .iter()
            .map(|&i| self.lines[i].trim().trim_start_matches(['>', '＞']).trim())
            .filter(|l| !l.is_empty() && !is_note_line(l))
            .map(|l| strip_directions(&extract_speech(without_speech_label(&item_text(l)))))
            .filter(|l| !l.is_empty())
            .collect();
        texts.join("")
    }

    fn parse_steps(&mut self, body: &[usize], offset: usize) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        let mut title_indent = usize::MAX;
        // "如客户表示不方便，则：" on its own line: the branch's line follows.
        let mut pending: Option<String> = None;
        for &raw in body {
            // Sub-heading steps are encoded as usize::MAX - line.
            let (line_no, text, forced) = if raw > self.lines.len() {
                let l = usize::MAX - raw;
                let t = heading_re()
                    .captures(&self.lines[l])
                    .map(|c| c[2].to_string())
                    .unwrap_or_default();
                (l, t, true)
            } else {
                (raw, self.lines[raw].clone(), false)
            };
            if text.trim().is_empty() {
                continue;
            }
            let indent = text.len() - text.trim_start().len();
            let trimmed = strip_markup(text.trim());
            let step_match = if forced {
                Some(
                    step_re()
                        .captures(&trimmed)
                        .map(|c| c[1].to_string())
                        .unwrap_or_else(|| trimmed.clone()),
                )
            } else if indent <= title_indent.min(3) {
                step_re().captures(&trimmed).map(|c| c[1].to_string())
            } else {
                None
            };
            if let Some(rest) = step_match {
                if !forced {
                    title_indent = title_indent.min(indent);
                }
                if let (Some(c), Some(st)) = (pending.take(), steps.last_mut()) {
                    st.directions.push(c);
                }
                let (title, inline) = split_title(&rest);
                // "（一）第一步 身份确认": the step word repeats the number.
                let title = match step_word_re().find(&title) {
                    Some(m) if m.end() < title.len() => title[m.end()..].trim().to_string(),
                    _ => title,
                };
                let non_int = NON_INTERRUPTIBLE.iter().any(|m| rest.contains(m));
                let mut step = Step {
                    number: offset + steps.len() + 1,
                    title: strip_markers(&clean_heading(&title)),
                    lines: Vec::new(),
                    conditionals: Vec::new(),
                    directions: Vec::new(),
                    collects: Vec::new(),
                    kind: StepKind::Statement,
                    field: None,
                    interruptible: !non_int,
                    source_line: line_no + 1,
                };
                if let Some(l) = inline {
                    push_line(&mut step, &l);
                }
                steps.push(step);
                continue;
            }
            let Some(step) = steps.last_mut() else {
                continue;
            };
            let content = strip_item_number(&item_text(&trimmed));
            if NON_INTERRUPTIBLE.iter().any(|m| content.contains(m)) {
                step.interruptible = false;
            }
            if let Some(cond) = pending.take() {
                if has_quote(&content) {
                    push_branch(step, cond, &content);
                    continue;
                }
                step.directions.push(cond);
            }
            if let Some(cond) = bare_condition(&content) {
                pending = Some(cond);
                continue;
            }
            push_line(step, &content);
        }
        if let (Some(c), Some(st)) = (pending.take(), steps.last_mut()) {
            st.directions.push(c);
        }
        for s in &mut steps {
            if s.lines.is_empty() {
                if let Some(c) = s.conditionals.first().cloned() {
                    self.warnings.push(format!(
                        "line {}: step {} \"{}\" has only conditional lines; the first one is used as its line",
                        s.source_line, s.number, s.title
                    ));
                    s.lines.push(c.line);
                } else {
                    self.warnings.push(format!(
                        "line {}: step {} \"{}\" has no line to say and is skipped",
                        s.source_line, s.number, s.title
                    ));
                }
            }
            s.kind = step_kind(&s.title, &s.text(), &s.conditionals);

            if s.kind == StepKind::Statement
                && s.collects.iter().any(|c| !c.is_empty())
                && asks_for_something(&s.text())
            {
                // "麻烦您看一下铭牌…您念给我就行。" with "记录：型号": a request for the
                // value the step records, though it has no question mark.
                s.kind = StepKind::Info;
            }
            if matches!(
                s.kind,
                StepKind::Info | StepKind::Confirm | StepKind::AnyQuestions
            ) {
                s.field = field_kind(&s.title, &s.text())
                    .or_else(|| field_kind("", &s.collects.join("；")));
                let records = s.collects.join("；");
                if s.collects.iter().any(|c| !c.is_empty())
                    && s.collects.iter().all(|c| records_yes_no(c))
                {
                    // "是否确认（是／否）": the step records a yes or no, whatever
                    // values its line reads back.
                    s.field = None;
                } else if s.kind == StepKind::Confirm
                    && s.collects.iter().all(|c| c.is_empty())
                    && reads_back_all(&s.title, &s.text())
                {
                    // "我跟您核对一下：科目、手机号、时段…都对吗？": a yes or no to the
                    // whole read-back, not the phone number it mentions.
                    s.field = None;
                } else if s.field == Some(FieldKind::Number)
                    && !s.collects.is_empty()
                    && !counts_only(&records)
                {
                    // "家电品类；台数": what is counted is recorded with the count.
                    s.field = Some(FieldKind::Text);
                }
            } else if s.kind == StepKind::Statement
                && ["核对", "确认"].iter().any(|k| s.title.contains(k))
                && !s.title.contains("身份")
            {
                // "核对安装时间：系统里给您预约的是…": a statement that states a value the
                // caller may want changed.
                s.field = field_kind(&s.title, &s.text()).filter(|k| {
                    matches!(k, FieldKind::Time | FieldKind::Address | FieldKind::Phone)
                });
            }
        }
        steps.retain(|s| !s.lines.is_empty());
        for (i, s) in steps.iter_mut().enumerate() {
            s.number = offset + i + 1;
        }
        steps
    }

    fn parse_kb(&mut self, body: &[usize]) -> Vec<QaEntry> {
        let mut out: Vec<QaEntry> = Vec::new();
        let mut pending: Option<(String, usize)> = None;
        let mut answer: Option<String> = None;
        let flush = |out: &mut Vec<QaEntry>,
                     pending: &mut Option<(String, usize)>,
                     answer: &mut Option<String>,
                     warnings: &mut Vec<String>| {
            if let Some((q, line)) = pending.take() {
                match answer.take() {
                    Some(a) if !a.is_empty() => out.push(QaEntry {
                        question: q,
                        answer: a,
                        source_line: line,
                    }),
                    _ => warnings.push(format!(
                        "line {line}: question \"{q}\" has no answer (A: …) and was dropped"
                    )),
                }
            }
        };
        let texts: Vec<String> = body
            .iter()
            .map(|&i| {
                let t = strip_markup(&strip_item_number(&item_text(&strip_markup(
                    &self.lines[i],
                ))));
                // "- ◆ 停车要钱吗？": the marker behind a list mark is a list mark too.
                t.trim_start_matches(QUESTION_MARKERS)
                    .trim_start()
                    .to_string()
            })
            .collect();
        // The next non-blank line is an answer label ("口径：…", "答：…").
        let answer_follows = |k: usize| {
            texts[k + 1..]
                .iter()
                .find(|t| !t.is_empty())
                .is_some_and(|t| a_re().is_match(t))
        };
        for (k, &i) in body.iter().enumerate() {
            // A Markdown table, one entry a row: | 问题 | 回答 |.
            if let Some(cells) = table_cells(&self.lines[i]) {
                flush(&mut out, &mut pending, &mut answer, &mut self.warnings);
                let header = cells.iter().all(|c| c.chars().count() <= 6);
                if let [q, a, ..] = cells.as_slice() {
                    if !header {
                        out.push(QaEntry {
                            question: extract_speech(q),
                            answer: extract_speech(a),
                            source_line: i + 1,
                        });
                    }
                }
                continue;
            }
            let t = texts[k].clone();
            if t.is_empty() {
                continue;
            }
            if let Some(c) = q_re().captures(&t) {
                flush(&mut out, &mut pending, &mut answer, &mut self.warnings);
                let rest = c[1].to_string();
                // "问：… 答：…" on one line.
                let (q, a) = match rest
                    .find("答：")
                    .or_else(|| rest.find("A:"))
                    .or_else(|| rest.find("A："))
                {
                    Some(pos) => (rest[..pos].to_string(), Some(rest[pos..].to_string())),
                    None => (rest, None),
                };
                pending = Some((extract_speech(&q), i + 1));
                if let Some(a) = a {
                    if let Some(c) = a_re().captures(&a) {
                        answer = Some(extract_speech(&c[1]));
                    }
                }
            } else if let Some(c) = a_re().captures(&t) {
                answer = Some(extract_speech(&c[1]));
            } else if (pending.is_none() || answer.is_some())
                && (bullet_re().is_match(&self.lines[i])
                    || t.ends_with(['？', '?'])
                    || self.lines[i].trim_start().starts_with(QUESTION_MARKERS))
                && answer_follows(k)
            {
                // "◎ 保费怎么付？" / "● 能退吗" then "口径：…": a marked question
                // without a 问： label is the question of the answer under it.
                flush(&mut out, &mut pending, &mut answer, &mut self.warnings);
                pending = Some((extract_speech(&t), i + 1));
            } else if let Some(a) = answer.as_mut() {
                a.push_str(&extract_speech(&t));
            }
        }
        flush(&mut out, &mut pending, &mut answer, &mut self.warnings);
        out
    }

    /// End section: 结束条件 items and 结束语 lines, labelled or not.
    fn parse_end(&self, body: &[usize]) -> (Vec<String>, Vec<String>) {
        self.parse_end_as(body, false)
    }

    fn parse_end_as(&self, body: &[usize], closing_default: bool) -> (Vec<String>, Vec<String>) {
        #[derive(PartialEq)]
        enum Mode {
            Auto,
            Cond,
            Close,
        }
        let mut mode = if closing_default {
            Mode::Close
        } else {
            Mode::Auto
        };
        let (mut conds, mut closing) = (Vec::new(), Vec::new());
        for &i in body {
            let raw = strip_markup(&self.lines[i]);
            if raw.is_empty() {
                continue;
            }
            let label = clean_heading(&raw);
            let (label_part, rest) = match raw.find(['：', ':']) {
                Some(p) if !has_quote(&raw[..p]) => {
                    let colon_len = raw[p..].chars().next().map(char::len_utf8).unwrap_or(1);
                    (
                        clean_heading(&raw[..p]),
                        raw[p + colon_len..].trim().to_string(),
                    )
                }
                _ => (label.clone(), String::new()),
            };
            // A label is short (结束语（取消的）：); a sentence that mentions the
            // closing (信息登记完的，说结束语，挂机。) is a condition.
            let is_label = (!raw.starts_with(['-', '*', '+', '•']) || rest.is_empty())
                && label_part.chars().count() <= 12
                && !label_part.contains(['，', '。', ',']);
            if is_label && CLOSING_LABELS.iter().any(|k| label_part.contains(k)) {
                mode = Mode::Close;
                if !rest.is_empty() {
                    closing.push(extract_speech(&rest));
                }
                continue;
            }
            if is_label && END_CONDITION_LABELS.iter().any(|k| label_part.contains(k)) {
                mode = Mode::Cond;
                if !rest.is_empty() {
                    conds.push(extract_speech(&rest));
                }
                continue;
            }
            let item = item_text(&raw);
            // After the conditions, a line that is not a list item and says a quoted
            // line (已提交续方单：“感谢…”, “再见。”) is a closing line.
            let listed = raw.starts_with(['-', '*', '+', '•']) || numbered_re().is_match(&raw);
            if mode == Mode::Cond && !listed && wraps_speech(&raw) {
                mode = Mode::Close;
            }
            match mode {
                Mode::Close => closing.push(closing_line(&item)),
                Mode::Cond => conds.push(strip_markup(&item)),
                Mode::Auto => {
                    // A word in quotes inside a case (记录“勿扰”) is no line to say.
                    if longest_quote(&item) >= 6 {
                        closing.push(closing_line(&item));
                    } else {
                        conds.push(strip_markup(&item));
                    }
                }
            }
        }
        conds.retain(|c: &String| !c.is_empty());
        closing.retain(|c: &String| !c.is_empty());
        (conds, closing)
    }

    fn parse_examples(&self, body: &[usize]) -> (Vec<String>, Vec<String>) {
        let mut bad_mode = false;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for &i in body {
            let raw = strip_markup(&self.lines[i]);
            if raw.is_empty() {
                continue;
            }
            let item = item_text(&raw);
            if !has_quote(&item) {
                if item.contains("反面")
                    || item.contains("不要")
                    || item.contains("错误")
                    || item.contains("避免")
                {
                    bad_mode = true;
                    continue;
                }
                if item.contains("正面")
                    || item.contains("模仿")
                    || item.contains("推荐")
                    || item.contains("正确")
                {
                    bad_mode = false;
                    continue;
                }
            }
            let s = extract_speech(&item);
            if s.is_empty() {
                continue;
            }
            if bad_mode {
                bad.push(s);
            } else {
                good.push(s);
            }
        }
        (good, bad)
    }

    fn find_callee(&self, script: &mut Script) {
        static NAME: OnceLock<Regex> = OnceLock::new();
        let name_re = re(
            r"(?:姓名|名字|称呼|客户|联系人)\s*[:：]\s*([\p{Han}]{2,4})",
            &NAME,
        );
        let mut name = None;
        let mut gender = None;
        for l in &script.profile {
            if let Some(c) = name_re.captures(l) {
                name = Some(c[1].to_string());
                if l.contains('女') {
                    gender = Some('女');
                } else if l.contains('男') {
                    gender = Some('男');
                }
                break;
            }
        }
        if name.is_none() {
            // "刘蕾，女，35岁，…" as the persona role.
            static ROLE: OnceLock<Regex> = OnceLock::new();
            let role_re = re(r"^([\p{Han}]{2,4})[，,、]\s*(男|女)", &ROLE);
            if let Some(c) = role_re.captures(&script.persona.role) {
                name = Some(c[1].to_string());
                gender = c[2].chars().next();
            }
        }
        let Some(name) = name else {
            return;
        };
        let sn = surname(&name);
        let all_lines: Vec<&str> = std::iter::once(script.opening.as_str())
            .chain(
                script
                    .steps
                    .iter()
                    .flat_map(|s| s.lines.iter().map(String::as_str)),
            )
            .chain(script.closing.iter().map(String::as_str))
            .collect();
        let mut title = None;
        for t in [
            "老师", "总", "经理", "主任", "先生", "女士", "小姐", "医生", "律师", "师傅",
        ] {
            let full = format!("{name}{t}");
            let short = format!("{sn}{t}");
            if all_lines
                .iter()
                .any(|l| l.contains(&full) || l.contains(&short))
            {
                title = Some(t);
                break;
            }
        }
        let title = title.or(match gender {
            Some('女') => Some("女士"),
            Some('男') => Some("先生"),
            _ => None,
        });
        script.honorific = Some(match title {
            Some(t) => format!("{sn}{t}"),
            None => name.clone(),
        });
        script.callee_name = Some(name);
    }
}

/// Characters in the longest “quoted” run of `s` (0 without quotes).
fn longest_quote(s: &str) -> usize {
    s.split(['“', '「', '"'])
        .skip(1)
        .map(|q| {
            q.split(['”', '」', '"'])
                .next()
                .unwrap_or("")
                .chars()
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A line whose quotes wrap what is to be said ("“再见。”", "仅咨询：“…”"), not
/// quotes inside a sentence ("客户说“不需要”的").
fn wraps_speech(s: &str) -> bool {
    has_quote(s) && extract_speech(s) != strip_markup(s).trim()
}

/// Splits "**标题**：“台词”" into the title and an inline line.
fn split_title(rest: &str) -> (String, Option<String>) {
    let r = rest.trim();
    if let Some(q) = r.find(['“', '「', '"', '『']) {
        let title = r[..q]
            .trim_end_matches(['：', ':', ' ', '-', '—'])
            .to_string();
        let line = r[q..].to_string();
        return (title, Some(line));
    }
    (r.to_string(), None)
}

/// Words that mark a bracketed aside as an instruction, not speech.
const DIRECTION_WORDS: &[&str] = &[
    "若",
    "如果",
    "如客户",
    "如用户",
    "如对方",
    "当",
    "时",
    "客户",
    "用户",
    "对方",
    "来电人",
    "停顿",
    "语气",
    "微笑",
    "稍停",
    "等待",
    "注意",
    "可选",
    "根据",
    "视情况",
    "语速",
    "强调",
    "重音",
    "直接进入",
    "跳过",
    "下一步",
    "跳到",
    "转到",
    "记录",
    "登记后",
    "备注",
];

/// `注：客户已经说了的不要再问` under an opening: the writer's note to the agent.
fn is_note_line(l: &str) -> bool {
    let t = item_text(l);
    ["注", "备注", "注意", "提示", "说明"].iter().any(|k| {
        t.strip_prefix(k)
            .is_some_and(|r| r.starts_with(['：', ':']) && !has_quote(r))
    })
}

fn is_direction(aside: &str) -> bool {
    DIRECTION_WORDS.iter().any(|w| aside.contains(w))
}

/// A line that reads like an instruction left in speech.
fn looks_annotated(l: &str) -> bool {
    let t = l.trim();
    t.starts_with('>')
        || t.starts_with("若对方")
        || t.starts_with("如果对方")
        || t.starts_with("若客户")
        || t.starts_with("如果客户")
        // "问他哪天方便，记下来", "跟他说…": written about the callee, to the agent.
        || ["问他", "问她", "跟他说", "跟她说", "告诉他", "告诉她", "记下来"]
            .iter()
            .any(|w| t.starts_with(w))
        || asides(t).iter().any(|a| is_direction(a))
}

/// The bracketed asides of a line (（…）, (…), 【…】, [..]), outermost only.
fn asides(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '（' | '(' | '【' | '[' => {
                if depth > 0 {
                    cur.push(c);
                }
                depth += 1;
            }
            '）' | ')' | '】' | ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(std::mem::take(&mut cur));
                } else {
                    cur.push(c);
                }
            }
            _ if depth > 0 => cur.push(c),
            _ => {}
        }
    }
    out
}

/// Removes asides that are instructions ("（停顿）", "（客户同意后）") from a line to say.
fn strip_directions(s: &str) -> String {
    let mut out = s.to_string();
    for a in asides(s).into_iter().filter(|a| is_direction(a)) {
        for wrap in [
            format!("（{a}）"),
            format!("({a})"),
            format!("【{a}】"),
            format!("[{a}]"),
        ] {
            out = out.replace(&wrap, "");
        }
    }
    out.trim().to_string()
}

/// Splits a leading bracketed aside off a line: "（用户找不到编号时）“没关系…”".
fn leading_aside(s: &str) -> Option<(String, String)> {
    let first = s.chars().next()?;
    if !matches!(first, '（' | '(' | '【' | '[') {
        return None;
    }
    let a = asides(s).into_iter().next()?;
    let close_at = s.find(a.as_str())? + a.len();
    let rest = s[close_at..].chars().skip(1).collect::<String>();
    Some((a.trim().to_string(), rest))
}

/// A label that says what a step records ("收集：", "【需登记】", "→ 记下："), not
/// what to say.
fn is_collect_label(label: &str) -> bool {
    let l = label.trim();
    // "记：能否进门": 记 alone, as a chat note writes it.
    if matches!(l, "记" | "需记" | "要记" | "记下来") {
        return true;
    }
    l.chars().count() <= 6
        && [
            "收集",
            "采集",
            "记录",
            "登记",
            "记下",
            "记好",
            "记一下",
            "获取",
            "所需信息",
            "字段",
        ]
        .iter()
        .any(|k| l.contains(k))
}

/// "话术：您好…", "标准话术：…", "说：…": the words after a label that says they
/// are to be said.
fn without_speech_label(line: &str) -> &str {
    match line.split_once(['：', ':']) {
        Some((label, rest)) if is_speech_label(label) || label.trim() == "说" => rest.trim(),
        _ => line,
    }
}

/// A label that says what follows is to be said ("【话术】", "【坐席说】").
fn is_speech_label(label: &str) -> bool {
    let l = label.trim();
    l.chars().count() <= 5
        && ["话术", "台词", "坐席说", "客服说", "原话", "说法"]
            .iter()
            .any(|k| l.contains(k))
}

/// "记录 → 到院日期": a short label, an arrow, and what follows it.
fn arrow_label(content: &str) -> Option<(&str, &str)> {
    let (p, len) = content
        .char_indices()
        .find(|(_, c)| LINE_ARROWS.contains(c))
        .map(|(p, c)| (p, c.len_utf8()))
        .or_else(|| content.find("->").map(|p| (p, 2)))
        .or_else(|| content.find("=>").map(|p| (p, 2)))?;
    let label = content[..p].trim();
    let what = content[p + len..]
        .trim()
        .trim_start_matches(['：', ':'])
        .trim();
    (!label.is_empty() && label.chars().count() <= 6 && !what.is_empty() && !has_quote(label))
        .then_some((label, what))
}

/// Splits a bracketed aside that follows a quoted line off it: "若…：“好的。”（改完再
/// 复述一次）" → ("若…：“好的。”", "改完再复述一次"). Only when the line ends with the
/// aside and a closing quote comes before it.
fn split_trailing_aside(s: &str) -> (String, Option<String>) {
    let t = s.trim_end();
    if !t.ends_with(['）', ')']) {
        return (s.to_string(), None);
    }
    let Some(q) = t.rfind(['”', '」', '』', '"']) else {
        return (s.to_string(), None);
    };
    let after = &t[q..];
    let after = &after[after.chars().next().map_or(0, char::len_utf8)..];
    let lead = after.trim_start_matches(|c: char| c.is_whitespace() || "。，！？；".contains(c));
    if !lead.starts_with(['（', '(']) {
        return (s.to_string(), None);
    }
    let asides = asides(lead);
    match asides.as_slice() {
        [a] if lead.chars().count() == a.chars().count() + 2
            && !a.trim().is_empty()
            && !NON_INTERRUPTIBLE.iter().any(|m| a.contains(m)) =>
        {
            (
                t[..q + t[q..].chars().next().map_or(0, char::len_utf8)].to_string(),
                Some(a.trim().to_string()),
            )
        }
        _ => (s.to_string(), None),
    }
}

/// Arrows that lead a line in a step ("→ 说：“…”", "→ 记下：…"): layout, never said.
const LINE_ARROWS: &[char] = &['→', '➜', '➔', '➝', '➞', '⇒', '➤', '➢', '▸', '►'];

/// "第一步" / "第 2 步" before a step's title.
fn step_word_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(
        r"^第\s*[0-9一二三四五六七八九十]{1,3}\s*步\s*[：:、.．]?\s*",
        &C,
    )
}

fn item_number_re() -> &'static Regex {
    static C: OnceLock<Regex> = OnceLock::new();
    re(r"^(?:\d{1,2}\s*[．.、)）]|[①-⑳])\s*", &C)
}

/// An item's text without its sub-number ("2．记录：…", "3、如…"); a number that
/// starts a value ("1.5 元") stays.
fn strip_item_number(s: &str) -> String {
    match item_number_re().find(s) {
        Some(m)
            if !s[m.end()..].starts_with(|c: char| c.is_ascii_digit() || c.is_whitespace())
                && m.end() < s.len() =>
        {
            s[m.end()..].to_string()
        }
        _ => s.to_string(),
    }
}

/// A condition alone on its line ("如客户表示现在不方便，则：", "若对方是家属："): the
/// line to say in that case is on the next line.
fn bare_condition(content: &str) -> Option<String> {
    let t = content.trim();
    if !t.ends_with(['：', ':']) || has_quote(t) {
        return None;
    }
    let c = condition_re().captures(t)?;
    c[2].trim().is_empty().then(|| branch_condition(&c[1]))
}

/// A branch condition without its connective: "如客户表示不方便，则" → "如客户表示不方便".
fn branch_condition(c: &str) -> String {
    let c = strip_markup(c);
    let c = c.trim().trim_end_matches(['，', ',', ' ']);
    let c = c.strip_suffix("则").unwrap_or(c);
    let c = c.strip_suffix("那么").unwrap_or(c);
    c.trim_end_matches(['，', ',', ' ']).to_string()
}

/// Splits a quoted line from an instruction after it: "「…好吗？」客户同意的记录改到
/// 周三。" → ("「…好吗？」", "客户同意的记录改到周三。"). Only when the quote opens the
/// line and closes after a sentence end, so a quoted term inside a sentence stays.
fn split_after_quote(s: &str) -> (String, Option<String>) {
    let t = s.trim();
    let Some(open) = t
        .chars()
        .next()
        .filter(|c| matches!(c, '“' | '「' | '『' | '"'))
    else {
        return (t.to_string(), None);
    };
    let close = match open {
        '“' => '”',
        '「' => '」',
        '『' => '』',
        _ => '"',
    };
    let inner = &t[open.len_utf8()..];
    let Some(e) = inner.rfind(close) else {
        return (t.to_string(), None);
    };
    let after = inner[e + close.len_utf8()..].trim();
    let ends_sentence = inner[..e]
        .trim_end()
        .ends_with(['。', '？', '！', '?', '!', '…', '~', '～']);
    if after.is_empty()
        || !ends_sentence
        || after
            .chars()
            .all(|c| c.is_whitespace() || "。，！？；、.,!?;".contains(c))
        || after.starts_with(['（', '(', '【', '['])
    {
        return (t.to_string(), None);
    }
    let quoted_end = open.len_utf8() + e + close.len_utf8();
    (
        t[..quoted_end].to_string(),
        Some(
            after
                .trim_start_matches(['，', ',', '。'])
                .trim()
                .to_string(),
        ),
    )
}

/// Verbs that open an instruction to the agent ("问清是哪一项", "改好再复述",
/// "记下新时间", "转技术组处理").
const INSTRUCTION_VERBS: &[&str] = &[
    "问清",
    "问明",
    "问一下是",
    "改好",
    "改正",
    "更正",
    "修改",
    "记下",
    "记录",
    "核实",
    "核对清楚",
    "查一下",
    "转给",
    "转交",
    "转技术",
    "转人工",
    "挂断",
    "结束通话",
    "说结束语",
    "跳过",
    "直接进入",
    "重新复述",
    "再复述",
    "按紧急",
    "标记",
    "备注",
    "这一步",
    "本步",
    "此步",
    "不再重复",
    "不用再问",
    "不再问",
    "改过来",
    "再核对",
    "不往下",
    "直接下一步",
    "进入下一步",
];

/// A line with no one addressed that opens with an instruction verb, or that
/// speaks of the callee in the third person ("告诉读者最多续借三十天", "请客户说出
/// 正确的": words to the callee address them as 您): a note to the agent.
fn instructs_agent(line: &str) -> bool {
    let t = line.trim_start_matches(['（', '(', ' ']);
    !t.contains('您')
        && !t.contains('你')
        && (INSTRUCTION_VERBS.iter().any(|v| t.starts_with(v))
            || callee_words!().split('|').any(|p| t.contains(p)))
}

/// "告诉学员一天最多4个课时，多出来的帮他另约一天" / "请学员另选一天": what the
/// document tells the agent to say, written about the callee. Returns the words as
/// said to the callee (告诉学员 dropped, 请学员 → 请您, 帮他 → 帮您) and the
/// instructions before and after them ("记下教练姓氏，告诉学员…", "…。不往下登记"),
/// or `None` when the line says nothing to the callee this way.
fn told_to_callee(line: &str) -> Option<(String, Vec<String>)> {
    static TELL: OnceLock<Regex> = OnceLock::new();
    let tell = re(
        concat!(
            r"(?:告诉|告知|跟|向|对|提醒)(?:",
            callee_words!(),
            r")(?:说明|解释|讲|说)?[：:，,]?"
        ),
        &TELL,
    );
    static ASK: OnceLock<Regex> = OnceLock::new();
    let ask = re(concat!(r"请(?:", callee_words!(), r")"), &ASK);
    // 他/她 only with a verb of saying: "跟他核对" tells the callee nothing.
    static TELL_HIM: OnceLock<Regex> = OnceLock::new();
    let tell_him = re(
        r"(?:告诉|告知)(?:他|她)[：:，,]?|(?:跟|向|对|给)(?:他|她)(?:说明|解释|讲|说)[：:，,]?",
        &TELL_HIM,
    );
    let (before, said) = match tell.find(line).or_else(|| tell_him.find(line)) {
        Some(m) => (line[..m.start()].trim(), line[m.end()..].trim()),
        None if ask.is_match(line) => ("", line.trim()),
        None => {
            // "问哪天几点，经纪人每天上午9点到晚上9点都能带看": the instruction first,
            // then the words.
            let first = line.split(['，', ',']).next().unwrap_or("");
            if first.len() == line.len() || !(asks_callee(first) || instructs_agent(first)) {
                return None;
            }
            (
                first,
                line[first.len()..].trim_start_matches(['，', ',']).trim(),
            )
        }
    };
    let mut notes = Vec::new();
    let before = before.trim_end_matches(['，', ',', '；', ';', '。']);
    if !before.is_empty() {
        // "能不能打不要自己说，告诉他…": what not to do is a note too.
        let forbids = ["不要", "别", "不用", "不能"]
            .iter()
            .any(|w| before.contains(w));
        // "问他哪天方便，记下来，跟他说…": asking and noting are the agent's.
        let agent_steps = before.starts_with('问') || before.contains("记下");
        if !instructs_agent(before) && !asks_callee(before) && !forbids && !agent_steps {
            return None;
        }
        notes.push(before.to_string());
    }
    let said = ask.replace_all(said, "请您");
    let said = said
        .replace("帮他", "帮您")
        .replace("给他", "给您")
        .replace("让他", "让您");
    // Instructions after the words: "…考过了再来约练车。不往下登记".
    let mut clauses: Vec<&str> = said.split_inclusive(['，', '。', '；', ',', ';']).collect();
    while let Some(last) = clauses.last() {
        let c = last.trim_end_matches(['，', '。', '；', ',', ';']).trim();
        let records = ["记下", "记录", "登记", "记上"]
            .iter()
            .any(|k| c.ends_with(k));
        if c.is_empty() || instructs_agent(c) || (records && !c.contains('您')) {
            if !c.is_empty() {
                notes.insert(usize::from(!before.is_empty()), c.to_string());
            }
            clauses.pop();
        } else {
            break;
        }
    }
    let said = clauses
        .concat()
        .trim_end_matches(['，', ',', '；', ';'])
        .to_string();
    (!said.is_empty() && !instructs_agent(&said)).then_some((said, notes))
}

/// "问哪天几点", "问清楚": the agent told to ask something.
fn asks_callee(clause: &str) -> bool {
    clause.strip_prefix('问').is_some_and(|r| {
        r.starts_with(['哪', '什', '几', '多', '清', '明', '一', '客', '对', '是'])
    })
}

/// "记“自行前往”", "记为“无”": a value to record, quoted, not words to say.
fn records_quoted(content: &str) -> bool {
    let t = content.trim();
    [
        "记“",
        "记\"",
        "记录“",
        "记录为“",
        "记为“",
        "记成“",
        "记作“",
        "登记“",
        "登记为“",
        "标记“",
        "标记为“",
        "备注“",
    ]
    .iter()
    .any(|k| t.starts_with(k))
}

/// A branch: its condition and the line under it, with any note after the quote
/// or in brackets kept as a direction.
fn push_branch(step: &mut Step, condition: String, content: &str) {
    let (content, trailing) = split_trailing_aside(content.trim());
    let (quoted, after) = split_after_quote(&content);
    let line = strip_directions(&strip_markers(&extract_speech(&quoted)));
    step.directions.extend(trailing);
    step.directions.extend(after);
    if records_quoted(&content) {
        step.directions
            .push(format!("{condition}：{}", content.trim()));
        return;
    }
    let tells =
        |line: &str| (line.starts_with("告诉") || line.starts_with("告知")) || !has_quote(&content);
    if let Some((said, notes)) = told_to_callee(&line).filter(|_| tells(&line)) {
        let ends_call = ends_the_call(&notes);
        step.directions.extend(notes);
        step.conditionals.push(Conditional {
            condition,
            line: said,
            ends_call,
        });
        return;
    }
    if !has_quote(&content) && instructs_agent(&line) {
        // "问清是哪一项，改好再复述一遍。": what the agent is to do, not words.
        step.directions.push(format!("{condition}：{line}"));
        return;
    }
    if line.is_empty() {
        step.directions.push(condition);
    } else {
        step.conditionals.push(Conditional {
            condition,
            line,
            ends_call: false,
        });
    }
}

/// A closing line without the usage note after it ("「再见。」（退课时使用）").
fn closing_line(item: &str) -> String {
    let (line, _) = split_trailing_aside(without_speech_label(item));
    let (line, _) = split_after_quote(&line);
    strip_directions(&extract_speech(&line))
}

fn push_line(step: &mut Step, content: &str) {
    let before = step.conditionals.len();
    push_line_parts(step, content);
    // "如果…：“…”（本次不预约，结束通话）": the aside ends the call after the branch.
    let (_, aside) = split_trailing_aside(content.trim());
    if step.conditionals.len() > before && ends_the_call(aside.as_slice()) {
        if let Some(c) = step.conditionals.last_mut() {
            c.ends_call = true;
        }
    }
}

fn push_line_parts(step: &mut Step, content: &str) {
    // "> “…”" quote markers and "→" arrows are layout, not speech.
    let content = content.trim().trim_start_matches(['>', '＞']).trim();
    let content = match content
        .strip_prefix("->")
        .or_else(|| content.strip_prefix("=>"))
    {
        Some(rest) => rest.trim(),
        None => content.trim_start_matches(LINE_ARROWS).trim(),
    };
    if content.is_empty() {
        return;
    }
    // "“…”（改完再复述一次）": an aside after the quoted line is a note to the agent.
    let (content, trailing) = split_trailing_aside(content);
    if let Some(a) = trailing {
        step.directions.push(a);
    }
    let content = content.as_str();
    if marked_unspoken(content) {
        step.directions.push(content.to_string());
        return;
    }
    // "记录 → 到院日期" / "登记 -> 接送地址": the field to record, behind an arrow.
    if let Some((label, what)) = arrow_label(content) {
        if is_collect_label(label) {
            step.collects.push(what.to_string());
            return;
        }
    }
    if let Some((aside, rest)) = leading_aside(content) {
        let rest = rest
            .trim()
            .trim_start_matches(['：', ':', '，', ','])
            .trim();
        if is_collect_label(&aside) && !has_quote(rest) {
            step.collects.push(rest.to_string());
            return;
        }
        let speech = strip_directions(&strip_markers(&extract_speech(rest)));
        if is_speech_label(&aside) {
            // 【话术】“…”: the label only says what follows is to be said.
            if !speech.is_empty() {
                step.lines.push(speech);
            }
            return;
        }
        if speech.is_empty() {
            step.directions.push(aside);
        } else if is_direction(&aside) || aside.ends_with('时') {
            step.conditionals.push(Conditional {
                condition: strip_markup(&aside),
                line: speech,
                ends_call: false,
            });
        } else {
            step.directions.push(aside);
            step.lines.push(speech);
        }
        return;
    }
    // Notes for the agent written as labelled lines without a quote (a quote inside
    // brackets, "记录：…（没有的记“无”）", is part of the note).
    if !has_quote(&strip_parens(content)) {
        if let Some(p) = content.find(['：', ':']) {
            if p <= 12 && is_collect_label(&content[..p]) {
                let what = content[p..].trim_start_matches(['：', ':']).trim();
                step.collects.push(what.to_string());
                return;
            }
            if p <= 12
                && [
                    "注意", "备注", "提示", "说明", "动作", "操作", "要求", "目的", "目标",
                ]
                .iter()
                .any(|k| content[..p].contains(k))
            {
                step.directions.push(content.to_string());
                return;
            }
        }
    }
    if let Some(c) = condition_re().captures(content) {
        let cond = strip_markup(&c[1]);
        let (quoted, after) = split_after_quote(&c[2]);
        let line = strip_markers(&extract_speech(&strip_directions(&quoted)));
        if records_quoted(&c[2]) {
            step.directions.push(content.to_string());
            return;
        }
        let tells = (line.starts_with("告诉") || line.starts_with("告知")) || !has_quote(&c[2]);
        if let Some((said, notes)) = told_to_callee(&line).filter(|_| tells) {
            let ends_call = ends_the_call(&notes) || ends_the_call(after.as_slice());
            step.directions.extend(after);
            step.directions.extend(notes);
            step.conditionals.push(Conditional {
                condition: cond,
                line: said,
                ends_call,
            });
            return;
        }
        // "打错了：道歉，直接挂": what the agent does, with no word to the callee.
        let acts_only = !line.contains('您')
            && !line.contains('你')
            && ["挂", "结束通话", "结束本次"]
                .iter()
                .any(|w| line.contains(w));
        if !has_quote(&c[2]) && (instructs_agent(&line) || acts_only) {
            step.directions.push(content.to_string());
            return;
        }
        if !line.is_empty() {
            let ends_call = ends_the_call(after.as_slice());
            step.directions.extend(after);
            step.conditionals.push(Conditional {
                condition: cond,
                line,
                ends_call,
            });
            return;
        }
    }
    // Labels such as "话术：" before a quote.
    let body = if has_quote(content) {
        let (quoted, after) = split_after_quote(content);
        step.directions.extend(after);
        quoted
    } else {
        match content.find(['：', ':']) {
            Some(p)
                if p <= 12
                    && ["话术", "台词", "示例", "说", "要点", "坐席", "客服"]
                        .iter()
                        .any(|k| content[..p].contains(k)) =>
            {
                content[p..].trim_start_matches(['：', ':']).to_string()
            }
            _ => content.to_string(),
        }
    };
    let line = strip_directions(&strip_markers(&extract_speech(&body)));
    if !line.is_empty() {
        step.lines.push(line);
    }
}

/// "您的名字", "联系人名字": a person's name asked for, not a place's ("小区名字",
/// "地铁站或者小区名字都行" is where, said as a place).
fn names_a_person(text: &str) -> bool {
    text.match_indices("名字").any(|(p, _)| {
        let before: String = text[..p]
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        ![
            "小区", "区", "站", "店", "地方", "公司", "学校", "单位", "医院", "路", "楼盘", "商场",
        ]
        .iter()
        .any(|k| before.ends_with(k))
    })
}

/// A step that reads everything back for one yes or no ("核对", "复述确认": "我跟您
/// 核对一下：…都对吗？").
fn reads_back_all(title: &str, text: &str) -> bool {
    (["核对", "复述", "确认信息", "信息确认"]
        .iter()
        .any(|k| title.contains(k)))
        && [
            "核对一下",
            "复述",
            "念一遍",
            "确认一下",
            "读一遍",
            "重复一遍",
        ]
        .iter()
        .any(|k| text.contains(k))
}

/// Words a document uses to mark a line as a note the agent must not read out
/// ("提醒（坐席看，不要念）：…", "⚠️ 坐席注意（不要念出来）：…").
const UNSPOKEN_MARKS: &[&str] = &[
    "不要念",
    "别念",
    "勿念",
    "不用念",
    "不念出来",
    "不要读出",
    "勿读",
    "坐席看",
    "仅供坐席",
    "坐席注意",
    "内部提示",
    "坐席须知",
];

/// A line the document itself marks as not to be said.
pub(super) fn marked_unspoken(line: &str) -> bool {
    UNSPOKEN_MARKS.iter().any(|k| line.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flowchart export is refused with what it is and how to make it run,
    /// naming its first node's line.
    #[test]
    fn a_flowchart_export_is_named_with_its_fix() {
        let doc = "流程图导出\n[N1] 开场\n  坐席说：您好，请问有什么可以帮您？\n  客户要办卡 → 转 N2\n  客户要停卡 → 转 N3\n[N2] 办卡\n  坐席说：月卡三百元。\n[N3] 停卡\n  坐席说：请报一下卡号。\n";
        let err = Script::parse(doc, "flow").expect_err("a flowchart has no steps");
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains("flowchart"), "{msg}");
    }

    #[test]
    fn words_told_to_the_callee_are_said_to_them() {
        let told = |l: &str| told_to_callee(l).map(|(said, notes)| (said, notes.join("|")));
        assert_eq!(
            told("告诉学员一天最多4个课时，多出来的帮他另约一天"),
            Some((
                "一天最多4个课时，多出来的帮您另约一天".into(),
                String::new()
            ))
        );
        assert_eq!(
            told("当天的车已经排满了，请学员另选一天"),
            Some(("当天的车已经排满了，请您另选一天".into(), String::new()))
        );
        assert_eq!(
            told("记下教练姓氏，告诉学员会尽量安排"),
            Some(("会尽量安排".into(), "记下教练姓氏".into()))
        );
        assert_eq!(
            told("问哪天几点，经纪人每天都能带看"),
            Some(("经纪人每天都能带看".into(), "问哪天几点".into()))
        );
        assert_eq!(
            told("请您报姓名和身份证后四位查档案，新号码另外记下").map(|t| t.0),
            None,
            "addressed already; nothing to rewrite"
        );
        assert_eq!(told("登记学员本人的手机号，家长的号码记在备注里"), None);
        assert!(records_quoted("记“自行前往”，把训练场地址告诉学员"));
        assert!(marked_unspoken("提醒（坐席看，不要念）：地址只告诉本人"));
    }

    #[test]
    fn a_place_name_is_not_a_persons_name() {
        assert!(names_a_person("麻烦说一下您的名字"));
        assert!(!names_a_person("地铁站或者小区名字都行"));
        assert_ne!(
            field_kind("上车点", "需要的话说一下在哪上车，地铁站或者小区名字都行。"),
            Some(FieldKind::Name)
        );
    }

    /// A plain-text document: numbered section lines, "（1）" steps, a Q&A table, and
    /// a step that only follows a branch.
    const PLAIN: &str = "驿站取件提醒

一、角色
驿站客服小丁。

二、开场白
\"您好，请问是{{姓名}}吗？您有一个包裹在驿站，现在方便吗？\"

三、通话步骤
（1）确认收件人
\"请问您是{{姓名}}本人吗？\"
（2）询问取件时间
\"请问您大概什么时候过来取？\"
如果对方来不了：\"我们可以送货上门，您需要吗？\"
（3）确认送货地址
\"请问送到哪个地址？\"

四、常见问答
| 问题 | 回答 |
| --- | --- |
| 驿站几点关门？ | 晚上九点关门。 |
| 可以让别人代取吗？ | 可以，报取件码就行。 |
";

    #[test]
    fn plain_text_documents_tables_and_branch_steps() {
        let s = Script::parse(PLAIN, "plain").expect("parses");
        assert_eq!(s.role, "驿站客服小丁。");
        assert!(
            s.opening.starts_with("您好，请问是{{姓名}}吗"),
            "{}",
            s.opening
        );
        let titles: Vec<&str> = s.steps.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["确认收件人", "询问取件时间", "确认送货地址"]);
        // The identity question the opening also asks; a time; an address.
        assert_eq!(s.steps[0].kind, StepKind::Convenience);
        assert_eq!(s.steps[1].field, Some(FieldKind::Time));
        assert_eq!(s.steps[2].field, Some(FieldKind::Address));
        assert_eq!(s.kb.len(), 2);
        assert_eq!(s.kb[1].question, "可以让别人代取吗？");
        assert_eq!(s.kb[1].answer, "可以，报取件码就行。");
        // 送货 comes up only in step 2's branch.
        assert_eq!(s.branch_only_steps().get(&2), Some(&1));
        assert!(!s.branch_only_steps().contains_key(&1));
    }

    #[test]
    fn bracketed_sections_and_bulleted_labels() {
        let doc = "# 保养提醒

## 【坐席】
- 角色：服务顾问小林。
- 核心任务：约到店保养的时间。

## 【流程】

### 第一步 · 询问里程
“您的车现在开到多少公里了？”

### 第二步 · 就诊人
“请问就诊人叫什么名字？”

### 第三步 · 联系电话
“请留一个联系电话，预约成功会发短信。”
";
        let s = Script::parse(doc, "bracketed").expect("parses");
        assert_eq!(s.role, "服务顾问小林。");
        assert_eq!(s.task, "约到店保养的时间。");
        let fields: Vec<Option<FieldKind>> = s.steps.iter().map(|s| s.field).collect();
        assert_eq!(
            fields,
            [
                Some(FieldKind::Number),
                Some(FieldKind::Name),
                Some(FieldKind::Phone)
            ]
        );
        assert!(s.steps.iter().all(|s| s.kind == StepKind::Info), "{s}");
        assert_eq!(s.steps[0].title, "询问里程");
    }

    /// A number only when what is asked or recorded is a count, an amount or a
    /// reading alone; with what it counts (名称, 规格, 品种) it is a description.
    #[test]
    fn number_fields_only_for_counts_alone() {
        assert_eq!(field_kind("", "数量"), Some(FieldKind::Number));
        assert_eq!(field_kind("", "几口人、几台空调"), Some(FieldKind::Number));
        assert_eq!(
            field_kind("询问里程", "您的车开到多少公里了？"),
            Some(FieldKind::Number)
        );
        assert_eq!(field_kind("抄表", "水表读数"), Some(FieldKind::Number));
        assert_eq!(
            field_kind("电梯层站数", "您家这台电梯一共停几层？"),
            Some(FieldKind::Number)
        );
        assert_eq!(
            field_kind("", "家里有几间卧室要装？"),
            Some(FieldKind::Number)
        );
        // A name or description recorded with its quantity is free text.
        assert_eq!(
            field_kind("", "药品名称、规格、数量"),
            Some(FieldKind::Text)
        );
        assert_eq!(field_kind("", "菜品名称和数量"), Some(FieldKind::Text));
        assert_eq!(field_kind("", "花的品种、数量"), Some(FieldKind::Text));
        assert_eq!(
            field_kind("订蛋糕", "请说一下要哪种口味，订几个人的？"),
            Some(FieldKind::Text)
        );
        assert_eq!(
            field_kind("订蛋糕", "这次订几个人的？"),
            Some(FieldKind::Number)
        );
        // A step whose record lists a thing with its count: text, not a number.
        let doc = "## 流程
1. 点餐
“请问您要点什么菜？”
记录：菜名、份数、数量
";
        let s = Script::parse(doc, "t").expect("parses");
        assert_eq!(s.steps[0].field, Some(FieldKind::Text), "{s}");
    }

    /// Scene and background titles are the role's section; a title that names a
    /// particular scene or someone's background is not.
    #[test]
    fn scene_and_background_titles_are_the_role() {
        for t in [
            "场景说明",
            "场景",
            "背景",
            "背景介绍",
            "任务背景",
            "2｜项目背景",
            "一、通话场景",
        ] {
            assert_eq!(classify_heading(t, false), Section::Role, "{t}");
        }
        assert_ne!(classify_heading("特殊场景处理", false), Section::Role);
        assert_ne!(classify_heading("客户背景", false), Section::Role);
        assert_eq!(classify_heading("任务", false), Section::Task);
        assert_eq!(classify_heading("坐席要做的事", false), Section::Task);
        // The callee half keeps its own background section.
        assert_eq!(classify_heading("背景", true), Section::PBackground);
    }

    /// Task labels written as what the call is to get done.
    #[test]
    fn task_labels_in_a_role_paragraph() {
        for (label, role_line) in [
            ("本次目标", "家电商城的售后回访员。"),
            ("通话目的", "家电商城的售后回访员。"),
            ("坐席要做的事", "家电商城的售后回访员。"),
            ("本次通话要办成的事", "家电商城的售后回访员。"),
            ("我们要完成的事", "家电商城的售后回访员。"),
        ] {
            let doc = format!(
                "## 背景介绍
{role_line}
{label}：问清空调装好以后用得怎么样。

## 流程
1. 使用情况
“空调装好以后用着还好吗？”
"
            );
            let s = Script::parse(&doc, "t").expect("parses");
            assert_eq!(s.task, "问清空调装好以后用得怎么样。", "{label}\n{s}");
            assert!(s.role.starts_with(role_line), "{label}\n{s}");
        }
        // A step's 目的：note names no task.
        let doc = "## 流程
1. 使用情况
目的：了解使用情况
“空调装好以后用着还好吗？”
";
        let s = Script::parse(doc, "t").expect("parses");
        assert!(s.task.is_empty(), "{s}");
    }

    /// Circled numbers label steps; arrows lead lines and notes; 记下/记录/登记
    /// notes are records, never said.
    #[test]
    fn circled_steps_arrow_lines_and_note_records() {
        let doc = "## 开场白
“您好，这里是宠物美容店。”

## 通话流程
① 预约洗护
→ 说：“您家狗狗这周要来洗澡吗？”
→ 记下：是否预约
❷ 狗狗体重
-> 说：“狗狗现在大概多重？”
=> 记录：体重
③、接送
➤ “需要我们上门接狗狗吗？”
⇒ 登记：接送地址
④ 备注
→ 说：“还有什么要交代美容师的吗？”
→ 备注：客户交代的事写进工单
";
        let s = Script::parse(doc, "t").expect("parses");
        let titles: Vec<&str> = s.steps.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["预约洗护", "狗狗体重", "接送", "备注"], "{s}");
        assert_eq!(s.steps[0].lines, ["您家狗狗这周要来洗澡吗？"]);
        assert_eq!(s.steps[0].collects, ["是否预约"]);
        assert_eq!(s.steps[1].lines, ["狗狗现在大概多重？"]);
        assert_eq!(s.steps[1].collects, ["体重"]);
        assert_eq!(s.steps[2].lines, ["需要我们上门接狗狗吗？"]);
        assert_eq!(s.steps[2].collects, ["接送地址"]);
        // 备注： stays an instruction to the agent: never said either.
        assert_eq!(s.steps[3].lines, ["还有什么要交代美容师的吗？"]);
        assert_eq!(s.steps[3].directions, ["备注：客户交代的事写进工单"]);
        for st in &s.steps {
            assert!(
                st.lines
                    .iter()
                    .all(|l| !l.contains(['→', '➤', '⇒', '>', '：'])),
                "{s}"
            );
        }
        assert!(s.spoken_annotations().is_empty(), "{s}");
    }

    /// Questions set off by a marker (◆, ●, ◎) or ending in a question mark, with
    /// the answer labelled 口径/答复口径/回复/A: under them; Q:/A: as before.
    #[test]
    fn marked_questions_with_labelled_answers() {
        let doc = "## 流程
1. 预约
“您看哪天方便？”

## 常见问题
- ◆ 停车要钱吗？
口径：店里顾客停车两小时免费。
- ● 能带孩子来吗
回复：可以，店里有儿童区。
周末人多，建议提前预约。
下雨天也营业吗？
A: 营业，风雨无阻。
Q: 能开发票吗？
A: 能，结账时说一下就行。
- ◎ 会员价怎么算？
答复口径：会员一律八五折。
◆ 问：能刷医保卡吗？
答：不能。
";
        let s = Script::parse(doc, "t").expect("parses");
        let qs: Vec<(&str, &str)> =
            s.kb.iter()
                .map(|q| (q.question.as_str(), q.answer.as_str()))
                .collect();
        assert_eq!(
            qs,
            [
                ("停车要钱吗？", "店里顾客停车两小时免费。"),
                (
                    "能带孩子来吗",
                    "可以，店里有儿童区。周末人多，建议提前预约。"
                ),
                ("下雨天也营业吗？", "营业，风雨无阻。"),
                ("能开发票吗？", "能，结账时说一下就行。"),
                ("会员价怎么算？", "会员一律八五折。"),
                ("能刷医保卡吗？", "不能。"),
            ],
            "{s}"
        );
    }

    /// End conditions and closing lines under one heading (结束语 or 收尾): the
    /// conditions after their label, then the quoted lines, labelled or not.
    #[test]
    fn end_conditions_and_closing_lines_under_one_heading() {
        let doc = "## 流程
1. 预约
“您看哪天方便？”

## 结束语
结束条件：
1. 时间已约好；
2. 客户说“不需要了”的，礼貌结束。
已预约：“好的，到时候见，再见。”
“感谢您的来电，再见。”
";
        let s = Script::parse(doc, "t").expect("parses");
        assert_eq!(
            s.end_conditions,
            ["时间已约好；", "客户说“不需要了”的，礼貌结束。"],
            "{s}"
        );
        assert_eq!(
            s.closing,
            ["好的，到时候见，再见。", "感谢您的来电，再见。"]
        );

        let doc = "## 流程
1. 预约
“您看哪天方便？”

## 收尾
收尾条件：
- 时间已约好
收尾话术：
“好的，再见。”
";
        let s = Script::parse(doc, "t").expect("parses");
        assert_eq!(s.end_conditions, ["时间已约好"], "{s}");
        assert_eq!(s.closing, ["好的，再见。"], "{s}");
    }
    /// What a step records decides its field when its line does not: a yes/no
    /// record makes a read-back a plain confirmation, a thing recorded with its
    /// count makes a count free text; `几只` asks for a count, a code described by
    /// its letters is a serial; an aside after a quoted line is a direction.
    #[test]
    fn records_decide_fields_and_trailing_asides_are_directions() {
        let doc = "### 流程
1. 登记水果
   - “您要订什么水果，一共几箱？”
   - 记录：水果品类；箱数
2. 几只宠物
   - “这次要寄养几只？”
   - 记录 → 寄养只数
3. 会员码
   - “请报一下会员码，是两个字母加四位数字。”
4. 复述
   - “我核对一下：地址、电话和送货时间都记好了，可以吗？”
   - 记录：是否确认（是／否）
   - 若对方说不对：“您说哪里要改。”（改好再复述）
";
        let s = Script::parse(doc, "records").expect("parses");
        assert!(s.spoken_annotations().is_empty(), "{s}");
        assert_eq!(s.steps[0].field, Some(FieldKind::Text), "{s}");
        assert_eq!(s.steps[1].field, Some(FieldKind::Number), "{s}");
        assert_eq!(s.steps[1].collects, ["寄养只数"], "{s}");
        assert!(s.steps[1].lines.iter().all(|l| !l.contains("记录")), "{s}");
        assert_eq!(s.steps[2].field, Some(FieldKind::Serial), "{s}");
        assert_eq!(s.steps[3].kind, StepKind::Confirm, "{s}");
        assert_eq!(s.steps[3].field, None, "{s}");
        assert_eq!(s.steps[3].conditionals[0].line, "您说哪里要改。");
        assert_eq!(s.steps[3].directions, ["改好再复述"]);
    }

    /// "如客户表示…，则：" with the line to say on the next line is a branch, and a
    /// closing line's bracketed usage note is not said.
    #[test]
    fn branch_condition_on_its_own_line_and_closing_usage_note() {
        let doc = "一、坐席角色
    驾校的约课客服小安。
二、本次任务
    约好学员下次练车的时间。
三、通话流程
（一）第一步 练车时间
    1．话术：「您下周哪天有空来练车？」
    2．记录：练车日期。
    3．如客户表示下周要出差，则：
    「没关系，那我给您约到下下周，您看周几合适？」客户同意的记录新日期。
    4．如客户表示不想学了，则：
    「好的，我登记一下，稍后有老师跟您联系。」（登记后结束通话）
四、结束语
    「好的，那就这么定了，再见。」
    「打扰您了，再见。」（客户不想学时使用）
";
        let s = Script::parse(doc, "t").unwrap();
        assert!(s.spoken_annotations().is_empty(), "{s}");
        let st = &s.steps[0];
        assert_eq!(st.title, "练车时间", "{s}");
        assert_eq!(st.lines, ["您下周哪天有空来练车？"], "{s}");
        assert_eq!(st.collects, ["练车日期。"], "{s}");
        let branches: Vec<(&str, &str)> = st
            .conditionals
            .iter()
            .map(|c| (c.condition.as_str(), c.line.as_str()))
            .collect();
        assert_eq!(
            branches,
            [
                (
                    "如客户表示下周要出差",
                    "没关系，那我给您约到下下周，您看周几合适？"
                ),
                (
                    "如客户表示不想学了",
                    "好的，我登记一下，稍后有老师跟您联系。"
                ),
            ],
            "{s}"
        );
        assert_eq!(
            st.directions,
            ["客户同意的记录新日期。", "登记后结束通话"],
            "{s}"
        );
        assert_eq!(
            s.closing,
            ["好的，那就这么定了，再见。", "打扰您了，再见。"],
            "{s}"
        );
    }
}
