//! The conversation engine: a pure state machine over a script's steps.
//!
//! Input: an utterance (with its ASR confidence) or a silence, plus the current
//! time. Output: actions (lines to say with their step and barge-in flag, fields
//! to record, a callback to schedule, hang up with an outcome). It owns no clock,
//! socket or thread, so the same engine serves text chat, the simulator and the
//! phone pipeline, and every turn is reproducible.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset};
use serde::Serialize;

use super::intent::{classify, is_short, Classified, Intent};
use super::kb::KnowledgeBase;
use super::script::{Conditional, FieldKind, Script, Step, StepKind};
use super::slots;
use super::text::normalize;
use super::timeparse::{parse_callback_time, speak_time};
use super::DialogueError;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    CallbackScheduled,
    Declined,
    NoResponse,
    DoNotCall,
    Failed,
    /// An operator hung up from the console before the script reached an outcome.
    OperatorEnded,
    /// The call was handed to a person (REFER accepted or bridged leg answered).
    Transferred,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::CallbackScheduled => "callback_scheduled",
            Outcome::Declined => "declined",
            Outcome::NoResponse => "no_response",
            Outcome::DoNotCall => "do_not_call",
            Outcome::Failed => "failed",
            Outcome::OperatorEnded => "operator_ended",
            Outcome::Transferred => "transferred",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            Outcome::Completed,
            Outcome::CallbackScheduled,
            Outcome::Declined,
            Outcome::NoResponse,
            Outcome::DoNotCall,
            Outcome::Failed,
            Outcome::OperatorEnded,
            Outcome::Transferred,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Speak a line. `fixed` lines come from [`Conversation::all_fixed_lines`]
    /// and can be pre-synthesized; `interruptible` false forbids barge-in.
    Say {
        text: String,
        step: Option<String>,
        interruptible: bool,
        fixed: bool,
    },
    /// Store a collected field (appended to earlier values of the same key).
    RecordField { key: String, value: String },
    /// Schedule a callback. `by_person` callbacks are for a human agent to make
    /// (the caller asked for a person and no transfer was possible): the agent's
    /// own dialler must not place them.
    ScheduleCallback {
        at: DateTime<FixedOffset>,
        by_person: bool,
        reason: Option<String>,
    },
    /// Hand the call to a person. The driver says its announce line, runs the
    /// transfer and reports back with [`Conversation::on_transfer_result`].
    /// Emitted only when [`Conversation::set_transfer`] enabled transfers.
    Transfer {
        reason: TransferReason,
        /// The caller's last words, for the summary the person sees.
        request: String,
    },
    /// End the call.
    HangUp { outcome: Outcome },
}

/// Why the conversation asks for a transfer to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferReason {
    /// The caller asked for a person (转人工, 找真人, …).
    CallerAsked,
    /// The script says this step or outcome goes to a person.
    Script,
    /// The agent failed to understand the caller several times in a row.
    NotUnderstood,
    /// An operator pressed "transfer" in the console.
    Operator,
}

impl TransferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferReason::CallerAsked => "caller_asked",
            TransferReason::Script => "script",
            TransferReason::NotUnderstood => "not_understood",
            TransferReason::Operator => "operator",
        }
    }
}

/// What became of a transfer the driver ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferResult {
    /// A person has the call (REFER accepted with a 2xx NOTIFY, or the bridged leg answered).
    Connected { target: String },
    /// Busy, no answer, unreachable or refused; `why` is recorded with the callback.
    Failed { why: String },
}

/// The result of one turn.
#[derive(Debug, Clone)]
pub struct TurnResult {
    pub intent: Intent,
    pub actions: Vec<Action>,
    /// The step the agent is at after this turn ("opening", "1", … or "closing").
    pub step: String,
    /// Knowledge-base entry used, with its confidence.
    pub kb: Option<(usize, f32)>,
}

impl TurnResult {
    /// The lines to say, in order.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().filter_map(|a| match a {
            Action::Say { text, .. } => Some(text.as_str()),
            _ => None,
        })
    }
    pub fn outcome(&self) -> Option<Outcome> {
        self.actions.iter().find_map(|a| match a {
            Action::HangUp { outcome } => Some(*outcome),
            _ => None,
        })
    }
}

/// A line known before the call, for TTS pre-synthesis.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FixedLine {
    pub step: Option<String>,
    pub text: String,
    pub interruptible: bool,
}

/// The summary written as the final record of a call.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub outcome: Option<Outcome>,
    pub fields: BTreeMap<String, String>,
    pub callback_at: Option<String>,
    pub steps: Vec<String>,
}

// Built-in lines (fixed, pre-synthesizable).
const REPEAT_PREFIX: &str = "好的，我再说一遍。";
const REPHRASE_PREFIX: &str = "我换个说法。";
const SILENCE_1: &str = "喂，您好，请问您还在听吗？";
const SILENCE_2: &str = "您好，能听到我说话吗？如果现在不方便，我可以换个时间再打给您。";
const SILENCE_CLOSE: &str = "可能是信号不太好，我稍后再联系您，祝您生活愉快，再见。";
const HOSTILE: &str = "非常抱歉打扰到您。我们会把您的号码加入免打扰名单，以后不会再来电。再见。";
const BYE_SHORT: &str = "打扰您了，再见。";
const WRONG_PERSON: &str = "不好意思，可能是我们的记录有误，打扰您了，再见。";
const DECLINE: &str = "好的，理解，不再占用您的时间。后续如有需要可以随时联系我们，再见。";
const ASK_TIME: &str = "好的，那您看什么时间方便？我准时再打给您。";
const HOLDING: &str = "这个问题我暂时没法给您准确答复，我先记录下来，核实后尽快回复您。";
const STEER_BACK: &str = "这个我不太方便回答，咱们先说回正题。";
const ASK_EMAIL: &str = "好的，请问资料发到哪个邮箱？您可以直接报一下邮箱地址。";
const EMAIL_AGAIN: &str = "抱歉，麻烦您再说一遍邮箱地址。";
const EMAIL_OK: &str = "好的，邮箱已经登记，资料稍后发给您。";
const EMAIL_REGISTERED: &str = "好的，资料会发到您登记的邮箱，请注意查收。";
const SPECIAL_ACK: &str = "好的，您说的情况我已经记录下来，会安排专人跟进。";
const FEEDBACK_ACK: &str = "好的，您的意见我已经完整记录。";
const NOTED: &str = "好的，我记下了。";
const CONTINUE: &str = "那我接着往下说。";
const ANY_MORE: &str = "请问还有其他问题吗？";
const LOW_CONFIDENCE: &str = "不好意思，刚才没听清楚，您能再说一遍吗？";
const IDENTITY: &str = "我是智能语音助手，受委托为您服务，通话内容会如实记录并由工作人员跟进。";
const YES_THAT_IS_US: &str = "对，是的。";
const HOLD: &str = "好的，不着急，我等您。";
const EARLY_BYE: &str = "好的，不打扰您了，后续有任何问题可以随时联系我们，再见。";
const ABUSIVE: &str = "非常抱歉给您带来不好的体验，今天先不打扰您了，再见。";
const EMPATHY: &str = "非常抱歉给您添麻烦了。";
const HUMAN_CALLBACK: &str =
    "好的，我已经为您登记，稍后由人工客服给您回电，请保持电话畅通。感谢您的来电，再见。";
const TRANSFER_FAILED: &str = "抱歉，人工客服现在暂时无法接通。我已经为您登记，稍后由人工客服给您回电，请保持电话畅通。再见。";
const OFFER_TRANSFER: &str = "不好意思，我可能没理解您的意思。需要我为您转接人工客服吗？";
const REASSURE: &str = "您的谨慎很有必要。我们是官方服务热线，不会向您索要密码、验证码，也不会让您转账；您的信息只用于这次服务，不会提供给任何第三方。";
/// The reassurance on a call we placed: who we are comes from the script's own
/// opening before it, so no "service hotline" is claimed for a call we made.
const REASSURE_OUTBOUND: &str = "您的谨慎很有必要。我们不会向您索要密码、验证码，也不会让您转账；您的信息只用于这次服务，不会提供给任何第三方。";
const ASK_NEW_VALUE: &str = "好的，麻烦您说一下新的信息。";
const OK_SHORT: &str = "好的。";
const ASK_NEW_TIME: &str = "好的，那您看改到哪天几点方便？";
const NO_MORE_CALLS_NOTED: &str = "好的，已经给您登记了，以后不会再给您打这类电话。";
const LATE_BYE: &str = "其他信息不变，感谢您的配合，再见。";
const LATE_NOTED_BYE: &str = "感谢您的来电，再见。";
const DANGER_MEDICAL: &str = "您说的情况很危险，请马上拨打120急救电话，或者尽快去最近医院的急诊。";
const DANGER_FIRE: &str = "情况紧急，请马上离开危险的地方，到安全的位置拨打119火警电话。";
const DANGER_GAS: &str = "请不要开关电灯和电器，也不要点火，马上关掉燃气总阀、打开门窗，到室外再拨打燃气抢修电话或者119。";
const DANGER_CRIME: &str = "您的安全最重要，请先到安全的地方，马上拨打110报警。";
/// What to tell a caller in danger: whom to call.
fn danger_line(d: super::intent::Danger) -> &'static str {
    match d {
        super::intent::Danger::Medical => DANGER_MEDICAL,
        super::intent::Danger::Fire => DANGER_FIRE,
        super::intent::Danger::Gas => DANGER_GAS,
        super::intent::Danger::Crime => DANGER_CRIME,
    }
}

/// How soon a person calls back when no transfer was possible.
const HUMAN_CALLBACK_MINUTES: i64 = 30;

const BUILTIN: &[&str] = &[
    REPEAT_PREFIX,
    REPHRASE_PREFIX,
    SILENCE_1,
    SILENCE_2,
    SILENCE_CLOSE,
    HOSTILE,
    WRONG_PERSON,
    DECLINE,
    ASK_TIME,
    HOLDING,
    STEER_BACK,
    ASK_EMAIL,
    EMAIL_AGAIN,
    EMAIL_OK,
    EMAIL_REGISTERED,
    SPECIAL_ACK,
    FEEDBACK_ACK,
    NOTED,
    CONTINUE,
    ANY_MORE,
    LOW_CONFIDENCE,
    IDENTITY,
    EARLY_BYE,
    HOLD,
    ABUSIVE,
    EMPATHY,
    HUMAN_CALLBACK,
    TRANSFER_FAILED,
    OFFER_TRANSFER,
    REASSURE,
    REASSURE_OUTBOUND,
    ASK_NEW_VALUE,
    OK_SHORT,
    NO_MORE_CALLS_NOTED,
    LATE_BYE,
    LATE_NOTED_BYE,
    DANGER_MEDICAL,
    DANGER_FIRE,
    DANGER_GAS,
    DANGER_CRIME,
];

/// What a caller says besides a do-not-call request, when it tells a need of its
/// own: the clauses that are not the request, if they hold a few words of content.
fn beyond_no_more_calls(text: &str) -> Option<String> {
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00+08:00").ok()?;
    let mut rest = Vec::new();
    let mut said = false;
    for sentence in text.split_inclusive(['。', '！', '!', '；', '？', '?']) {
        for clause in sentence.split_inclusive(['，', ',']) {
            let bare = clause.trim_end_matches(['，', ',', '。', '！', '!', '；', '？', '?']);
            if classify(bare, now).intent == Intent::Hostile {
                said = true;
            } else {
                rest.push(clause);
            }
        }
    }
    let rest: String = rest.concat();
    let content = rest.chars().filter(|c| super::text::is_han(*c)).count();
    // A trouble, or what the caller rang for ("我今天就是来配个药的").
    let need = tells_problem(&rest)
        || [
            "坏",
            "断",
            "不了",
            "没法",
            "报修",
            "维修",
            "故障",
            "问题",
            "就是来",
            "是来",
            "我想",
            "我要",
            "想问",
            "咨询",
            "打来是",
            "打过来是",
        ]
        .iter()
        .any(|w| rest.contains(w));
    (said && content >= 6 && need).then_some(rest)
}

/// Worried questions about who is calling or what happens to the caller's data:
/// answered with a reassurance, never taken as a do-not-call request.
const WORRY: &[&str] = &[
    "骗子",
    "诈骗",
    "骗人",
    "骚扰",
    "泄露",
    "给别人",
    "卖给",
    "个人信息",
    "隐私",
    "正规",
    "靠谱",
    "真的假的",
    "安全吗",
    "可信",
];

/// Whether an opening's last question is an open one about why the caller rings
/// ("请问家里有什么需要报修的？", "您想咨询什么业务？"), not a yes/no question.
fn asks_open_need(opening: &str) -> bool {
    let last = opening
        .trim_end_matches(['？', '?', '。', ' '])
        .rsplit(['？', '?', '。', '！', '!'])
        .next()
        .unwrap_or(opening);
    // "请问是要安装新机，还是家里的热水器需要报修？": a choice among needs asks
    // the need too.
    let need_choice = last.contains("还是")
        && [
            "需要", "要", "办理", "报修", "咨询", "安装", "维修", "投诉", "查询", "预约",
        ]
        .iter()
        .any(|w| last.contains(w));
    // "请问您家里是遇到什么虫害问题了吗？": a question word before the need makes
    // the 吗 part of an open question, not a yes-or-no one.
    static OPEN_NEED: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let open_need = OPEN_NEED
        .get_or_init(|| {
            regex::Regex::new(r"(?:什么|啥)[^，,]{0,4}(?:问题|情况|事|困难|麻烦|需求|需要)").ok()
        })
        .as_ref()
        .is_some_and(|re| re.is_match(last));
    (need_choice
        || ["什么", "哪些", "哪方面", "啥"]
            .iter()
            .any(|w| last.contains(w)))
        && (!last.ends_with('吗') || open_need)
        && !["方便", "时间", "几点", "哪天", "多少", "上午", "下午"]
            .iter()
            .any(|w| last.contains(w))
}

/// Who is calling and why, from an outbound opening: the `我是…` / `这里是…` clause
/// and a following clause about the callee (`您之前在社区登记了打流感疫苗`), as
/// one sentence. `None` when the opening introduces no one.
fn self_introduction(opening: &str) -> Option<String> {
    let clauses: Vec<&str> = opening
        .split(['，', ',', '。', '？', '?', '！', '!'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let at = clauses
        .iter()
        .position(|c| c.starts_with("我是") || c.starts_with("这里是"))?;
    let mut out = clauses[at].to_string();
    if let Some(next) = clauses.get(at + 1).filter(|c| {
        ["您之前", "您在", "您上", "您的", "您家", "您预约", "您登记"]
            .iter()
            .any(|w| c.starts_with(w))
    }) {
        out.push('，');
        out.push_str(next);
    }
    out.push('。');
    Some(out)
}

/// A branch line asking when to get back to the caller ("您看哪天我再跟您确认一下？",
/// "您什么时候方便我再打过来？").
fn asks_when_to_ring_again(line: &str) -> bool {
    ["哪天", "什么时候", "几点", "哪个时间"]
        .iter()
        .any(|w| line.contains(w))
        && ["再跟您", "再给您", "再打", "再联系", "回电", "再确认"]
            .iter()
            .any(|w| line.contains(w))
}

/// Whether a step asks what the caller rings about (the fault, the request): on an
/// inbound line whose opening already asked that, the caller's first words answer it.
fn step_asks_need(step: &Step, opening: &str) -> bool {
    const NEED: &[&str] = &[
        "问题",
        "故障",
        "坏",
        "报修",
        "需要",
        "情况",
        "什么事",
        "需求",
        "内容",
        "咨询",
        "办理",
    ];
    match step.kind {
        StepKind::AnyQuestions => true,
        StepKind::Info => {
            let told_already = step.directions.iter().any(|d| {
                d.contains("已经")
                    && ["下一步", "进入步骤", "不再重复问", "不用再问", "跳过"]
                        .iter()
                        .any(|w| d.contains(w))
            });
            told_already
                || opening_names_subject(opening, step)
                || NEED
                    .iter()
                    .any(|w| step.title.contains(w) || step.text().contains(w))
                    && !matches!(
                        step.field,
                        Some(
                            FieldKind::Phone
                                | FieldKind::Serial
                                | FieldKind::Time
                                | FieldKind::Address
                                | FieldKind::Name
                                | FieldKind::Number
                        )
                    )
        }
        _ => false,
    }
}

/// Whether a step's line says its serial starts with letters ("HX开头",
/// "是KT两个字母加八位数字").
fn names_letter_prefix(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    chars
        .windows(2)
        .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase())
        && ["开头", "字母"].iter().any(|w| line.contains(w))
}

/// "哎了地，二六零三九二" to "…LD 开头，后面六位数字": the letters the line names are
/// misheard or left out, the digits are the right count; the number is the
/// line's letters and those digits.
fn with_letter_prefix(line: &str, value: String) -> String {
    if value.chars().any(|c| !c.is_ascii_digit()) {
        return value;
    }
    let chars: Vec<char> = line.chars().filter(|c| *c != ' ').collect();
    let Some(start) = chars
        .windows(2)
        .position(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase())
    else {
        return value;
    };
    let prefix: String = chars[start..]
        .iter()
        .take_while(|c| c.is_ascii_uppercase())
        .collect();
    // "后面六位数字" / "加八位数字": how many digits follow the letters.
    let rest: String = chars[start + prefix.len()..].iter().collect();
    let wanted = rest.find("位").and_then(|i| {
        let before: Vec<char> = rest[..i].chars().collect();
        let n = before.last().copied()?;
        n.to_digit(10)
            .or_else(|| "零一二三四五六七八九十".find(n).map(|k| (k / 3) as u32))
    });
    match wanted {
        Some(n) if value.len() == n as usize => format!("{prefix}{value}"),
        _ => value,
    }
}

/// Whether an agent's line asks the caller something (a question, or a request
/// to say or give something).
fn asks_something(line: &str) -> bool {
    line.contains(['？', '?'])
        || [
            "请您",
            "请问",
            "您说",
            "说一下",
            "说一个",
            "说个",
            "告诉",
            "麻烦您",
            "报一下",
            "报给",
            "留一个",
            "留个",
            "提供",
            "您看",
            "您定",
        ]
        .iter()
        .any(|w| line.contains(w))
}

/// The closing lines a completed call says. Two or more lines that each say
/// goodbye are alternatives, one per way a call ends ("那就周六见…再见" /
/// "好的，打扰您了…再见"): the first that is not a polite retreat is said, after
/// the lines without a goodbye that lead up to it. Lines that only end together
/// ("感谢您的耐心。" + "祝您生活愉快，再见。") are all said.
fn completed_closing(lines: Vec<String>) -> Vec<String> {
    let farewell = |l: &str| ["再见", "拜拜", "再会"].iter().any(|w| l.contains(w));
    if lines.iter().filter(|l| farewell(l)).count() < 2 {
        return lines;
    }
    let retreat = |l: &str| {
        ["打扰", "不需要", "有需要随时", "有需要再"]
            .iter()
            .any(|w| l.contains(w))
    };
    let Some(pick) = lines
        .iter()
        .position(|l| farewell(l) && !retreat(l))
        .or_else(|| lines.iter().position(|l| farewell(l)))
    else {
        return lines;
    };
    lines
        .into_iter()
        .take(pick + 1)
        .enumerate()
        .filter(|(k, l)| *k == pick || !farewell(l))
        .map(|(_, l)| l)
        .collect()
}

/// The times a confirmation step proposes ("我们这周六上午十点给您留了号"): each clause
/// with a clock word, parsed. A date alone ("疫苗12月10日到期") proposes nothing.
/// The value of a phone field when the caller keeps the number the call is on.
const CALLED_NUMBER: &str = "本机号码";

/// Words that name a day.
const DAY_WORDS: &[&str] = &[
    "月", "日", "号", "周", "星期", "礼拜", "今天", "明天", "后天", "今儿", "明儿",
];

/// "那天下午吧" / "上午" to "系统给您排在12月10日周四送货，上午…或者下午…，您看哪个
/// 时段方便？": a time of day without a day is on the day the line proposes.
fn on_proposed_day(value: &str, reply: &str, line: &str, now: DateTime<FixedOffset>) -> String {
    if DAY_WORDS.iter().any(|w| reply.contains(w)) || value.len() < 10 {
        return value.to_string();
    }
    let days: Vec<String> = line
        .split(['，', ',', '。', '；', '？', '?', '！'])
        .filter(|cl| DAY_WORDS.iter().any(|w| cl.contains(w)))
        .filter_map(|cl| slots::wanted_time(cl, now))
        .filter(|t| t.len() >= 10)
        .map(|t| t[..10].to_string())
        .collect();
    match days.as_slice() {
        [day, rest @ ..] if rest.iter().all(|d| d == day) => format!("{day}{}", &value[10..]),
        _ => value.to_string(),
    }
}

fn proposed_times(line: &str, now: DateTime<FixedOffset>) -> Vec<String> {
    const CLOCK: &[&str] = &["点", "上午", "下午", "晚上", "中午", "早上", ":", "："];
    let mut out: Vec<String> = line
        .split(['，', ',', '。', '；', '？', '?', '！'])
        .filter(|cl| CLOCK.iter().any(|w| cl.contains(w)))
        // Opening hours ("每天早上九点到晚上八点都能打") propose no slot; a span on a
        // named day ("明天下午两点到四点") does.
        .filter(|cl| {
            let day = [
                "今天", "明天", "后天", "周", "星期", "礼拜", "月", "号", "日",
            ]
            .iter()
            .any(|w| cl.contains(w));
            !["每天", "营业", "开门", "都能", "都可以"]
                .iter()
                .any(|w| cl.contains(w))
                && (day || !["到", "至", "之间"].iter().any(|w| cl.contains(w)))
        })
        .filter_map(|cl| slots::extract(FieldKind::Time, cl, now))
        .collect();
    out.dedup();
    out
}

/// The words name an hour, not just a day ("下午三点", "10:30").
fn names_clock(text: &str) -> bool {
    ["点", ":", "：", "上午", "下午", "晚上", "中午", "早上"]
        .iter()
        .any(|w| text.contains(w))
}

/// "喂……是那个收旧家电的吧？" / "你们是宽带公司吗": a short question whether the
/// caller reached who the opening named (a content bigram of the opening said
/// between 是 and the question's end).
fn checks_who_we_are(text: &str, opening: &str) -> bool {
    let norm = normalize(text);
    if norm.chars().count() > 16 {
        return false;
    }
    let mut t = norm.as_str();
    for lead in [
        "喂",
        "请问",
        "你们这",
        "你们",
        "你这",
        "您这",
        "您那",
        "这里",
        "这边",
        "那边",
        "这",
        "那个",
    ] {
        t = t.strip_prefix(lead).unwrap_or(t);
    }
    let Some(body) = t.strip_prefix('是') else {
        return false;
    };
    // "是我。量房收费吗？": the yes of someone who was asked who they are, then a
    // question of their own.
    if body.starts_with(['我', '的']) {
        return false;
    }
    let Some(body) = [
        "的吧", "的吗", "的嘛", "吧", "吗", "嘛", "对吧", "对吗", "是吧",
    ]
    .iter()
    .find_map(|end| body.strip_suffix(end)) else {
        return false;
    };
    let body = body.strip_prefix("那个").unwrap_or(body);
    content_bigrams(body)
        .iter()
        .any(|b| opening.contains(b.as_str()))
}

/// "想报个修" / "我有点事想咨询一下": the caller says they want something without
/// saying what; the need is still to be asked, as after a greeting. So does
/// "我想配点药" to "请问您这次要续配什么药？": nothing beyond the opening's words.
fn is_bare_request(norm: &str, opening: &str) -> bool {
    const WORDS: &[&str] = &[
        "先说一句",
        "就是来",
        "今天",
        "报一下修",
        "报修一下",
        "报个修",
        "报修",
        "修个东西",
        "修东西",
        "咨询一下",
        "咨询",
        "问一下",
        "问个事",
        "问点事",
        "问问",
        "有个事",
        "有点事",
        "有事",
        "办个事",
        "办点事",
        "麻烦",
        "就是",
        "那个",
        "一下",
        "请问",
        "我们",
        "我",
        "想",
        "要",
        "是",
        "了",
        "啊",
        "呢",
        "的",
        "个",
        "下",
        "嗯",
        "呃",
        "一些",
        "些",
        "一点",
        "点",
        "来",
    ];
    let mut rest = norm.to_string();
    for w in WORDS {
        rest = rest.replace(w, "");
    }
    let han: Vec<char> = rest.chars().filter(|c| super::text::is_han(*c)).collect();
    !norm.is_empty()
        && rest.chars().all(super::text::is_han)
        && han.len() <= 4
        && han.iter().all(|c| opening.contains(*c))
}

/// Whether the opening's own question asks for what a free-text step collects:
/// "请问您这次要续配什么药？" before a step "了解要配的药" (配, 药 in both), so the
/// caller's first words are that step's answer.
fn opening_names_subject(opening: &str, step: &Step) -> bool {
    if !matches!(step.field, None | Some(FieldKind::Text)) {
        return false;
    }
    let question = opening
        .trim_end_matches(['？', '?', '。', ' '])
        .rsplit(['？', '?', '。', '！', '!', '，', ','])
        .next()
        .unwrap_or(opening);
    const FUNCTION: &str = "请问您你这次要的是什么哪些啥一下个有可以帮吗呢吧了说想";
    let content: Vec<char> = question
        .chars()
        .filter(|c| super::text::is_han(*c) && !FUNCTION.contains(*c))
        .collect();
    let subject = format!("{} {}", step.title, step.text());
    let mut shared: Vec<char> = content
        .into_iter()
        .filter(|c| subject.contains(*c))
        .collect();
    shared.sort_unstable();
    shared.dedup();
    shared.len() >= 2
}

/// Words of a fault report ("不出水了", "开不了机"): a question carrying one at the
/// need step is the caller's need, not a Q&A lookup.
const PROBLEM_WORDS: &[&str] = &[
    "坏",
    "慢",
    "不出",
    "漏",
    "响",
    "异味",
    "怪味",
    "不能",
    "不了",
    "没法",
    "故障",
    "不工作",
    "不亮",
    "黑屏",
    "断",
    "卡",
    "不动",
    "失灵",
    "报修",
    "维修",
    "出问题",
    "没反应",
    "没有反应",
    "反应都没",
    "没动静",
    "动静都没",
    "没声音",
    "声音都没",
    "不灵",
    // A warning that will not go away: "换了新电池还是提示", "老是报错".
    "报错",
    "报警",
    "一直提示",
    "还是提示",
    "老是提示",
    "电量低",
    "打不开",
    "用不了",
    "停水",
    "没水",
    "停电",
    "没电",
    "爆了",
    // A thing that should be warm, cold, running or flowing and is not.
    "不热",
    "不凉",
    "不制冷",
    "冰凉",
    "不转",
    "不通",
    "堵",
    "冒烟",
    "喷水",
    "滋水",
    "渗水",
    "往外冒",
    // Gone or lost all at once ("家里的网一下子就没了", "一点网都没有").
    "就没了",
    "突然没了",
    "全没了",
    "一点网都没",
    "掉线",
    "上不去",
    "连不上",
    "进不去",
    // A warning light ("光猫上的灯全红了", "亮红灯").
    "红灯",
    "灯红",
    "灯全红",
    "闪红",
    // Symptoms, for health lines ("我想问一下，就是我腰疼好几天了").
    "疼",
    "痛",
    "不舒服",
    "发烧",
    "咳嗽",
    "头晕",
    "拉肚子",
    "过敏",
];

/// The words tell of a fault or trouble. "能不能…" asks whether something can be
/// done; its 不能 is no trouble ("小区里能不能装充电桩？").
fn tells_problem(text: &str) -> bool {
    let t = text.replace("能不能", "能");
    PROBLEM_WORDS.iter().any(|w| t.contains(w))
}

/// A line that asks for a yes or a no ("您需要送上门吗？").
fn is_yes_no(line: &str) -> bool {
    let t = line.trim_end_matches(['？', '?', '。', '！', ' ', '”', '」']);
    t.ends_with('吗')
        || t.ends_with('么')
        || ["要不要", "需不需要", "是否", "可不可以", "行不行"]
            .iter()
            .any(|w| t.contains(w))
}

/// The two-character runs of `s` that carry content: not pronouns, particles or the
/// words every service question has (需要, 可以, 时间).
fn content_bigrams(s: &str) -> Vec<String> {
    const GENERIC: &[&str] = &[
        "我们", "你们", "您的", "需要", "可以", "这个", "那个", "时间", "一下", "的话", "什么",
        "是不", "不是", "好的", "没有", "有没", "现在", "这样", "我的", "你的", "给您", "给我",
    ];
    let chars: Vec<char> = s.chars().filter(|c| super::text::is_han(*c)).collect();
    chars
        .windows(2)
        .map(|w| w.iter().collect::<String>())
        .filter(|b| {
            !GENERIC.contains(&b.as_str()) && !b.contains(['的', '了', '吧', '吗', '呢', '啊'])
        })
        .collect()
}

/// The unit a count is asked in: 度 in "屋里大概多少度？", 公里 in "开了多少公里".
fn number_unit(question: &str) -> Option<String> {
    let at = question
        .find("多少")
        .map(|i| i + "多少".len())
        .or_else(|| question.find('几').map(|i| i + '几'.len_utf8()))?;
    let unit: String = question[at..]
        .chars()
        .take_while(|c| super::text::is_han(*c) && !"的呢吗啊呀了".contains(*c))
        .take(2)
        .collect();
    let unit = match unit.chars().next() {
        Some('个' | '位' | '台' | '度' | '平' | '次' | '岁' | '天' | '年' | '人') => {
            unit.chars().take(1).collect()
        }
        _ => unit,
    };
    (!unit.is_empty()).then_some(unit)
}

/// Words of one meaning written one way, so that a condition and the caller's words
/// compare: 滋水/冒水/喷水/渗水 are all water coming out (漏水).
fn same_meaning(s: &str) -> String {
    const SAME: &[(&[&str], &str)] = &[
        (
            &["滋水", "冒水", "喷水", "渗水", "淌水", "往外流水"],
            "漏水",
        ),
        (&["没在家", "不在家", "家里没人", "家里没有人"], "家里没人"),
        (&["冰凉", "冰冷", "不怎么热", "不太热", "温吞"], "不热"),
        // Being at work or away means nobody is at home.
        (
            &[
                "要上班",
                "得上班",
                "在上班",
                "去上班",
                "上班",
                "出差",
                "在外地",
                "不在家",
                "没在家",
                "家里没有人",
                "没人在家",
            ],
            "家里没人",
        ),
        // Who in a household needs care first.
        (
            &[
                "老母亲",
                "老父亲",
                "老太太",
                "老爷子",
                "老人家",
                "老两口",
                "老伴",
                "八十多岁",
                "七十多岁",
                "九十多岁",
                "上了年纪",
                "年纪大",
                "岁数大",
            ],
            "老人",
        ),
        (
            &[
                "做完手术",
                "做了手术",
                "动了手术",
                "刚做手术",
                "手术",
                "生病",
                "病了",
                "感冒",
                "发烧",
                "住院",
                "瘫痪",
                "卧床",
            ],
            "病人",
        ),
        (&["宝宝", "新生儿", "刚出生", "坐月子", "月子"], "婴儿"),
        // Passed away, as people say it.
        (
            &[
                "已经不在了",
                "已经走了",
                "已经去世",
                "已经过世",
                "不在了",
                "去世",
                "过世",
                "病死",
                "老死",
                "没救回来",
                "没救过来",
                "个月走了",
                "前走了",
                "年走了",
                "天走了",
            ],
            "去世",
        ),
        (&["孕妇", "怀孕", "怀着孕"], "孕妇"),
        // A gas leak, as people notice it: the smell added to town gas.
        (
            &[
                "臭鸡蛋味",
                "臭鸡蛋的味",
                "煤气味",
                "天然气味",
                "燃气的味",
                "煤气的味",
                "漏气",
                "漏煤气",
                "漏燃气",
            ],
            "燃气味",
        ),
        // A machine or wire giving off smoke or a burnt smell.
        (&["烧焦", "塑料味", "冒烟", "烧起来"], "焦糊味"),
        // Bought only just now: a new machine, to be installed.
        (
            &[
                "装新机",
                "刚买",
                "新买",
                "买了台新",
                "买了一台新",
                "要装新",
                "装新的",
            ],
            "新机",
        ),
        // Shut in a lift or a room: trapped.
        (
            &[
                "被关在",
                "关在里面",
                "困在里面",
                "困在",
                "被卡在",
                "卡在里面",
                "出不来",
                "被锁在",
            ],
            "有人被困",
        ),
        // Brought to the door, or fetched in person: the two ways anything ordered
        // reaches the caller.
        (
            &[
                "送药上门",
                "送货上门",
                "配送上门",
                "送到家里",
                "送到家",
                "送家里",
                "送到门口",
                "送过来",
                "送上门",
            ],
            "送上门",
        ),
        (
            &[
                "到店自取",
                "到店取",
                "到店拿",
                "来店里拿",
                "去店里拿",
                "来店里取",
                "去店里取",
                "自己来取",
                "自己去取",
                "自己来拿",
                "自己去拿",
                "自己取",
                "自己拿",
                "自取",
            ],
            "自取",
        ),
    ];
    let mut out = s.to_string();
    for (words, to) in SAME {
        for w in words.iter() {
            out = out.replace(w, to);
        }
    }
    out
}

/// Results a verb can be denied with in a potential complement (来不了, 修不好,
/// 进不去, 打不开).
const COMPLEMENT_RESULTS: &str = "了到成动好起上下出完及去来开进住掉懂清通";

/// The index of the 不/没 in a verb-不-result complement ("进不去", "修不好"),
/// where the 不 denies the result, not the verb.
fn potential_complement(chars: &[char]) -> Option<usize> {
    const NEG: &[char] = &['不', '没'];
    (1..chars.len().saturating_sub(1)).find(|&k| {
        NEG.contains(&chars[k])
            && super::text::is_han(chars[k - 1])
            && !"我你他她都也还就可并再想要会能".contains(chars[k - 1])
            && COMPLEMENT_RESULTS.contains(chars[k + 1])
    })
}

/// A corrected address said from the estate on ("东冠小区16幢803"), with the
/// district and road of the recorded one ("滨江区浦沿路东冠小区15幢") kept in front.
fn keep_address_prefix(old: &str, new: &str) -> String {
    let head: String = new.chars().take(2).collect();
    match old.find(&head) {
        Some(pos) if pos > 0 && !new.starts_with(&old[..pos]) => format!("{}{new}", &old[..pos]),
        _ => new.to_string(),
    }
}

/// `value` with its unit number replaced by the one in `token` ("16幢" in
/// "东冠小区15幢" → "东冠小区16幢"), when both name the same unit.
fn replace_same_unit(value: &str, token: &str) -> Option<String> {
    static C: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let unit = C.get_or_init(|| {
        regex::Regex::new(r"(\d+)(幢|栋|号楼|单元|室|楼|号)").expect("static regex")
    });
    let new = unit.captures(token)?;
    let old = unit
        .captures_iter(value)
        .find(|c| c[2] == new[2] && c[1] != new[1])?;
    let m = old.get(0)?;
    Some(format!(
        "{}{}{}",
        &value[..m.start()],
        &new[0],
        &value[m.end()..]
    ))
}

/// "一周内", "三天以内", "7天内": the span a direction's condition names.
fn within_span(text: &str) -> Option<chrono::Duration> {
    static C: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = C.get_or_init(|| {
        regex::Regex::new(
            r"([一二两三四五六七八九十\d]{1,2})\s*(个星期|星期|周|天|日)(?:以内|之内|内)",
        )
        .expect("static regex")
    });
    let c = re.captures(text)?;
    let digits: Vec<char> = c[1].chars().collect();
    let n = i64::from(super::text::parse_number(&digits)?.0);
    let days = match &c[2] {
        "天" | "日" => n,
        _ => n * 7,
    };
    Some(chrono::Duration::days(days))
}

/// "报了型号", "已经报过号码", "说了地址": what the caller has already given.
fn given_value_re() -> &'static regex::Regex {
    static C: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        regex::Regex::new(r"(?:报了|报过|说了|说过|给了|给过|提供了|提供过)(\p{Han}{2,4}?)(?:的|以后|之后|，|,|$)")
            .expect("static regex")
    })
}

/// Whether the caller's words say what a branch's condition says: "今年的已经打过了"
/// for 若对方说今年已经打过了, "我们白天都上班，家里没人" for 若用户白天家里没人,
/// "这个疫苗我不打" for 若对方不想打. Each alternative of the condition (…或者…, 、)
/// is compared on its content, leaving out the value the step is about: two of its
/// bigrams said (or all, when it has one or two), a bigram also counting when its two characters come close together in one
/// clause ("药我停了" says 停药). A negation on one side only is no match
/// ("今年还没打过" does not say 已经打过了).
fn says_condition(condition: &str, text: &str) -> bool {
    const TOPIC_NOUNS: &[&str] = &[
        "号码", "手机", "电话", "地址", "时间", "户号", "编号", "姓名", "名字", "日期",
    ];
    let condition = &same_meaning(condition);
    let text = &same_meaning(text);
    const NEG: &[char] = &['不', '没', '未', '别'];
    let mut cond = condition.trim();
    for p in ["若是", "若", "如果", "假如", "要是", "如", "当"] {
        cond = cond.trim_start_matches(p);
    }
    let cond = cond.replace(
        [
            '：', ':', '“', '”', '"', '（', '）', '(', ')', '。', '？', '！', '；', '，', ',', '、',
        ],
        "|",
    );
    let cond = cond.replace("或者", "|").replace('或', "|");
    let clauses: Vec<&str> = text
        .split(['，', ',', '。', '？', '！', '；', ' ', '、'])
        .filter(|c| !c.is_empty())
        .collect();
    // Clauses with no negation: where a condition that denies nothing can be said
    // ("疼得厉害，晚上都睡不着" says 疼得厉害 in its first clause).
    let plain: Vec<&str> = clauses
        .iter()
        .copied()
        .filter(|cl| !cl.contains(NEG))
        .collect();
    let near = |b: &str, clauses: &[&str]| {
        let mut it = b.chars();
        let (Some(x), Some(y)) = (it.next(), it.next()) else {
            return false;
        };
        clauses.iter().any(|cl| {
            let v: Vec<char> = cl.chars().collect();
            let px: Vec<usize> = (0..v.len()).filter(|&k| v[k] == x).collect();
            let py: Vec<usize> = (0..v.len()).filter(|&k| v[k] == y).collect();
            px.iter().any(|a| py.iter().any(|b| a.abs_diff(*b) <= 3))
        })
    };
    let text_negated = text.contains(NEG);
    cond.split('|').any(|alt| {
        let mut alt = alt.trim().to_string();
        for who in [
            "对方",
            "客户",
            "用户",
            "居民",
            "车主",
            "业主",
            "收件人",
            "来电人",
            "老人",
            "患者",
        ] {
            if let Some(rest) = alt.strip_prefix(who) {
                alt = rest.to_string();
            }
        }
        for filler in [
            "自己", "表示", "说", "提出", "反映", "经常", "一直", "总是", "明确",
        ] {
            alt = alt.replace(filler, "");
        }
        // "客户是装新机的": the 是…的 frame around what is said of the caller.
        if alt.chars().count() > 3 {
            if let Some(rest) = alt.strip_prefix('是') {
                alt = rest.to_string();
            }
            if let Some(rest) = alt.strip_suffix('的') {
                alt = rest.to_string();
            }
        }
        // "客户说有钢琴时": the "when" is no content.
        for when in ["的时候", "时候", "时"] {
            if let Some(rest) = alt.strip_suffix(when) {
                alt = rest.to_string();
                break;
            }
        }
        // "家里有老人": who is in the household is the content.
        for frame in ["家里有", "家中有", "家里", "家中"] {
            if let Some(rest) = alt.strip_prefix(frame) {
                if rest.chars().count() >= 2 {
                    alt = rest.to_string();
                }
                break;
            }
        }
        // "若室温低于十二度": a threshold on an amount the caller said ("十度").
        if let Some(hit) = threshold_said(&alt, text) {
            return hit;
        }
        let negated = alt.contains(NEG);
        // "来不了" / "修不好": a verb with its result denied (potential complement); the
        // caller says the same of the same verb ("去不了" for 来不了: coming and going
        // are one movement seen from two ends).
        {
            let chars: Vec<char> = alt.chars().collect();
            if let Some(k) = potential_complement(&chars) {
                let (verb, result) = (chars[k - 1], chars[k + 1]);
                let verbs: Vec<char> = match verb {
                    '来' | '去' => vec!['来', '去', '过'],
                    v => vec![v],
                };
                // "进不去" and "进不来" are one: the caller's side or ours.
                let results: Vec<char> = match result {
                    '来' | '去' => vec!['来', '去'],
                    r => vec![r],
                };
                let said = verbs.iter().any(|v| {
                    results
                        .iter()
                        .any(|r| NEG.iter().any(|n| text.contains(&format!("{v}{n}{r}"))))
                });
                if said {
                    return true;
                }
            }
        }
        // "不想参加这次体检" / "不打算续费": refusing the thing the step is about. The
        // caller names it (体检) and refuses taking part in it (不去了, 不做了, 算了),
        // without asking for another day or form instead (改/换).
        if negated && refuses(&alt, text) {
            return true;
        }
        // "要邮寄" / "想换号码": the wish is in the modal; the content is what follows.
        if !negated {
            // "有钢琴": what is owned is the content ("有一台立式钢琴").
            for m in ["想要", "需要", "打算", "希望", "要求", "要", "想", "有"] {
                if let Some(rest) = alt.strip_prefix(m) {
                    if rest.chars().count() >= 2 {
                        alt = rest.to_string();
                    }
                    break;
                }
            }
        }
        // "不想打" / "我不打": the same verb refused ("进不去" is no refusal: its
        // verb comes before the 不).
        if negated && potential_complement(&alt.chars().collect::<Vec<_>>()).is_none() {
            let chars: Vec<char> = alt.chars().collect();
            if let Some(k) = chars.iter().position(|c| NEG.contains(c)) {
                let rest: String = chars[k + 1..].iter().collect();
                let verb = ["想", "要", "愿意", "愿", "打算", "用", "需要"]
                    .iter()
                    .find_map(|m| rest.strip_prefix(m))
                    .unwrap_or(&rest);
                let verb: String = verb.chars().take(1).collect();
                // Coming and going are one movement seen from two ends: the caller
                // "不去了" where the script says "不来了".
                let same_verb = |seg: &str| {
                    seg.contains(&verb)
                        || (verb == "来" && seg.contains('去'))
                        || (verb == "去" && seg.contains('来'))
                };
                if !verb.is_empty()
                    && verb.chars().all(super::text::is_han)
                    && clauses.iter().any(|cl| {
                        NEG.iter().any(|n| {
                            cl.match_indices(*n).any(|(i, _)| {
                                same_verb(&cl[i..].chars().skip(1).take(3).collect::<String>())
                            })
                        })
                    })
                    && alt.trim_end_matches('了').chars().count() <= 4
                {
                    return true;
                }
            }
        }
        // "已经在别的医院打过了": done already, said by its verb ("上礼拜在宠物店打过了").
        let elsewhere = ["别的", "别家", "别处", "别人"]
            .iter()
            .fold(alt.clone(), |a, w| a.replace(w, "他处"));
        if !elsewhere.contains(NEG) && alt.contains("已经") {
            if let Some(k) = alt.find("过") {
                let verb: String = alt[..k].chars().rev().take(1).collect();
                if verb.chars().all(super::text::is_han)
                    && !verb.is_empty()
                    && plain.iter().any(|cl| cl.contains(&format!("{verb}过")))
                {
                    return true;
                }
            }
        }
        if negated && !text_negated {
            return false;
        }
        let said_in: &[&str] = if negated { &clauses } else { &plain };
        // The value a step is about (号码 in 若对方换了号码) is its topic, not what the
        // condition says about it.
        let bigrams: Vec<String> = content_bigrams(&alt)
            .into_iter()
            .filter(|b| !TOPIC_NOUNS.contains(&b.as_str()))
            .collect();
        if bigrams.is_empty() {
            return false;
        }
        let said = bigrams
            .iter()
            .filter(|b| said_in.iter().any(|cl| cl.contains(b.as_str())) || near(b, said_in))
            .count();
        // A short alternative ("今天就要": 今天, 天就, 就要) is said whole; two of its
        // three bigrams are in "今天就是来配个药的" too.
        let needed = if bigrams.len() == 3 && alt.chars().count() <= 4 {
            3
        } else {
            bigrams.len().min(2)
        };
        if said >= needed {
            return true;
        }
        // "邮寄" said as "寄到家里" / "寄过来吧": a two-character verb said by its head
        // with a complement after it.
        if let [b] = bigrams.as_slice() {
            let head = b.chars().nth(1).unwrap_or(' ');
            if !negated
                && !"的了人们子们性度天".contains(head)
                && said_in.iter().any(|cl| {
                    ["到", "过来", "回", "给", "一下", "吧"]
                        .iter()
                        .any(|k| cl.contains(&format!("{head}{k}")))
                })
            {
                return true;
            }
        }
        false
    })
}

/// The alternatives of a branch condition ("没空带过来、家里没车，或者不肯出门").
fn condition_alternatives(condition: &str) -> Vec<String> {
    condition
        .replace("或者", "|")
        .split(['|', '、', '，', ',', '；', '或'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// "低于十二度" / "超过七十岁" / "不到五天": the condition's threshold, checked on the
/// amount the caller said with the same unit. `None` when the condition sets none
/// or the caller said no such amount.
fn threshold_said(alt: &str, text: &str) -> Option<bool> {
    const BELOW: &[&str] = &["低于", "小于", "少于", "不到", "不足", "以下", "之下"];
    const ABOVE: &[&str] = &["高于", "大于", "多于", "超过", "以上", "之上"];
    let below = BELOW.iter().any(|w| alt.contains(w));
    let above = ABOVE.iter().any(|w| alt.contains(w));
    if below == above {
        return None;
    }
    let unit = alt
        .chars()
        .rev()
        .find(|c| "度岁天次年月个元斤米".contains(*c))?;
    let limit = *slots::amounts_with_unit(alt, unit).first()?;
    let said = slots::amounts_with_unit(text, unit);
    let v = *said.first()?;
    Some(if below { v < limit } else { v > limit })
}

/// Whether `text` refuses what the negated condition `alt` names ("不想参加这次体检"):
/// the thing (a content bigram of the condition after its verb) is named, and taking
/// part is refused (不去, 不做, 不参加, 不要了, 算了, 放弃) with no other day or form asked
/// for instead.
fn refuses(alt: &str, text: &str) -> bool {
    const TAKE_PART: &[&str] = &[
        "去", "来", "参加", "做", "打", "要", "用", "需要", "想", "弄", "办", "考虑", "报名",
    ];
    let refused = ["算了", "放弃", "免了", "不必了"]
        .iter()
        .any(|w| text.contains(w))
        || ['不', '没', '别'].iter().any(|n| {
            text.match_indices(*n).any(|(i, _)| {
                let rest = &text[i + n.len_utf8()..];
                let rest = rest.trim_start_matches(['想', '打', '算']);
                TAKE_PART.iter().any(|v| rest.starts_with(v))
            })
        });
    // "周四不去了，改周六": another day asked for is a change, not a refusal.
    if !refused || ['改', '换'].iter().any(|w| text.contains(*w)) {
        return false;
    }
    let Some(k) = alt.find(['不', '没', '别']) else {
        return false;
    };
    // The thing refused: what follows the refused verb (体检 in 不想参加这次体检).
    let object: String = alt[k..].chars().skip(1).collect();
    let object = object
        .trim_start_matches(['想', '要', '愿', '意', '打', '算'])
        .to_string();
    let words: Vec<String> = content_bigrams(&object)
        .into_iter()
        .filter(|b| {
            !TAKE_PART.iter().any(|v| b.starts_with(v))
                && !b.chars().any(|c| "这那次本今个些年".contains(c))
        })
        .collect();
    !words.is_empty() && words.iter().any(|w| text.contains(w.as_str()))
}

/// Words that say a proposed value does not suit the caller (这个时间不行, 那天不在家).
const CHANGE_WORDS: &[&str] = &[
    "不行",
    "挪到",
    "挪一下",
    "推迟",
    "延后",
    "调到",
    "提前到",
    "加班",
    "出差",
    "没时间",
    "走不开",
    "不在家",
    "不在",
    "没空",
    "换",
    "改",
    "不方便",
    "有事",
    "来不了",
    "去不了",
    "过不去",
    "去不成",
    "来不成",
    "赶不上",
    "不对",
    "变了",
    "搬",
    "不用这个",
    "不是这个",
    "停机",
    "不用了",
];

/// Whether the line's last question asks for permission or convenience
/// ("现在方便吗？", "占用您两分钟可以吗？"), where "没事" means "go ahead".
fn asks_permission(line: &str) -> bool {
    let last = line
        .trim_end_matches(['？', '?', '。', ' '])
        .rsplit(['。', '！', '!', '？', '?'])
        .next()
        .unwrap_or("");
    ["方便", "打扰", "耽误", "占用", "介意", "可以吗", "行吗"]
        .iter()
        .any(|w| last.contains(w))
}

/// Whether the caller asks to change the value: a [`CHANGE_WORDS`] word that is not
/// itself denied ("号没换", "不用改", "地址没变" keep it).
fn says_change(text: &str) -> bool {
    CHANGE_WORDS.iter().any(|w| {
        text.match_indices(w).any(|(i, _)| {
            let head = &text[..i];
            let denied = head.ends_with(['没', '不', '别', '未'])
                || ["不用", "不要", "没有", "不必", "别再"]
                    .iter()
                    .any(|n| head.ends_with(n));
            w.starts_with(['不', '没']) || !denied
        })
    })
}

/// Words that say the caller cannot give the value (找不到编号, 不记得).
const CANNOT_WORDS: &[&str] = &[
    "找不到",
    "不知道",
    "不记得",
    "忘了",
    "看不到",
    "看不清",
    "没有",
    "没找到",
    "不清楚",
    "找不着",
    "磨掉",
    "磨没",
    "看不见",
    "够不着",
    "拿不到",
    "不在身边",
    "没看到",
    "不晓得",
    "模糊",
    "掉了",
    "撕了",
    "在哪",
    "哪知道",
    "扔了",
    "丢了",
    "没注意",
    "想不起",
];

/// KB confidence needed to treat a statement without question words as a question.
const STATEMENT_KB_CONFIDENCE: f32 = 0.3;
/// Outside "any questions?", a statement is taken as a question ("师傅来之前会先打电话吧")
/// only when it covers most of a Q&A entry.
const STATEMENT_AS_QUESTION: f32 = 0.5;

/// Words that make "不方便" about the call itself.
const CALL_BUSY: &[&str] = &[
    "开会",
    "忙",
    "开车",
    "再打",
    "晚点",
    "回头",
    "没空",
    "没时间",
    "一会",
    "待会",
    "等会",
    "现在",
    "这会",
];

/// The KB confidence of an answer the sentence encoder vouches for (or a fair
/// character match): enough to answer a need told as a wish.
const DENSE_ANSWER: f32 = 0.25;

/// ASR confidence under which free-form content is asked again.
const MIN_CONFIDENCE: f32 = 0.35;

#[derive(Debug, Clone, PartialEq)]
enum State {
    NotStarted,
    /// Waiting for the reply to the opening question.
    Opening,
    Step(usize),
    AwaitCallbackTime {
        tries: u32,
    },
    AwaitEmail {
        tries: u32,
    },
    ConfirmEmail {
        email: String,
    },
    /// Asked "需要为您转接人工客服吗？" after repeated misunderstandings.
    OfferTransfer,
    /// A transfer is running in the driver; waiting for its result.
    Transferring,
    Ended,
}

/// A running conversation. Cloning is cheap (the script and its knowledge base are
/// shared): the call loop keeps a copy from before an early-ended turn, to go back to
/// when the caller turns out not to have finished.
#[derive(Clone)]
pub struct Conversation {
    script: Arc<Script>,
    kb: Arc<KnowledgeBase>,
    vars: BTreeMap<String, String>,
    state: State,
    /// Where to resume after a detour (callback question, e-mail capture).
    resume_at: usize,
    opening_kind: StepKind,
    skip_first_step: bool,
    last_lines: Vec<Action>,
    repeats: u32,
    silences: u32,
    reprompts: u32,
    /// The callee asked us to hold: a following silence is not "listening".
    held: bool,
    /// The goodbye of a completed call was said and the caller may still speak
    /// once before hanging up (a careful agent lets the caller hang up first).
    late_turn_open: bool,
    resume_state: Option<State>,
    heard_anything: bool,
    answered: u32,
    docs_requested: bool,
    fields: BTreeMap<String, String>,
    path: Vec<String>,
    outcome: Option<Outcome>,
    callback_at: Option<DateTime<FixedOffset>>,
    started: DateTime<FixedOffset>,
    /// Transfers to a person are possible (a target is configured, the script allows it).
    transfer_enabled: bool,
    /// Consecutive not-understood turns that lead to a transfer offer (0 = never).
    transfer_after_failures: u32,
    /// Consecutive turns the agent could not understand or answer.
    failures: u32,
    /// The state a declined transfer offer returns to.
    before_offer: Option<State>,
    /// Typed fields in the order they were recorded (key, kind), for corrections.
    typed: Vec<(String, FieldKind)>,
    /// Values for later steps heard early ("漏水了，编号是QS…"), by step index.
    prefill: BTreeMap<usize, String>,
    /// Yes/no steps the caller already answered "yes" to in passing ("地址对，电话也能
    /// 打通"): recorded and skipped when the flow reaches them.
    affirmed_ahead: std::collections::BTreeSet<usize>,
    /// Yes/no steps already answered "no" in the caller's own words.
    denied_ahead: std::collections::BTreeSet<usize>,
    /// The value kind a branch of the current step asked for instead of its own
    /// ("找不到编号？报手机号也行").
    branch_kind: Option<FieldKind>,
    /// A branch's line kept until the caller gives the new value it follows.
    after_new_value: Option<String>,
    /// The current step's branch asked a yes/no of its own ("…我们可以送货上门，您需要
    /// 送上门吗？"): the next reply answers it.
    branch_offer: bool,
    /// Steps whose branch was taken in this call.
    branches_taken: std::collections::BTreeSet<usize>,
    /// Steps that belong to an earlier step's branch (确认送货地址 after "如果对方来不了：
    /// …送货上门…"), by step index: said only when that branch was taken.
    branch_only: BTreeMap<usize, usize>,
    /// Times the current value step was asked again.
    value_retries: u32,
    /// The caller reported a fault or need (not only asked questions).
    need_noted: bool,
    /// The caller's words that told the trouble, when they came as a question.
    need_text: Option<String>,
}

fn question_sentence(text: &str) -> String {
    let sentences: Vec<String> = split_sentences(text);
    sentences
        .iter()
        .rev()
        .find(|s| s.contains('？') || s.contains('?') || s.contains('吗'))
        .cloned()
        .unwrap_or_else(|| {
            sentences
                .last()
                .cloned()
                .unwrap_or_else(|| text.to_string())
        })
}

/// The question of a line, shortened for re-asking: a long sentence is cut to
/// its last questioning clause ("…，您现在方便吗？" → "您现在方便吗？").
fn short_question(text: &str) -> String {
    let q = question_sentence(text);
    if q.chars().count() <= 20 {
        return q;
    }
    if let Some(pos) = q.rfind("请问") {
        return q[pos..].to_string();
    }
    q.split('，')
        .rev()
        .find(|c| {
            (c.contains('？') || c.contains('?') || c.contains('吗')) && c.chars().count() >= 4
        })
        .map(str::to_string)
        .unwrap_or(q)
}

fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if matches!(c, '。' | '？' | '！' | '?' | '!' | '；') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// A shorter rewording of a line for the second repeat request: its first
/// sentence plus its question, which carry the point.
fn rephrase(text: &str) -> String {
    let s = split_sentences(text);
    if s.len() > 2 {
        let q = question_sentence(text);
        return if s[0] == q {
            q
        } else if s.contains(&q) {
            format!("{}{}", s[0], q)
        } else {
            format!("{}{}", s[0], s[1])
        };
    }
    // Short lines: keep the first and last clause, which carry the point.
    let clauses: Vec<&str> = text.split('，').collect();
    if clauses.len() >= 3 {
        let last = clauses[clauses.len() - 1];
        return format!("简单说就是：{}，{}", clauses[0], last);
    }
    format!("也就是说，{text}")
}

/// Words that make a statement an implicit question or request ("墙上要打孔" asks
/// whether that is allowed); a plain fact ("洗衣机是去年买的") has none of them.
const IMPLIED_QUESTION: [&str; 14] = [
    "要", "能", "会", "可以", "需要", "得", "想", "怎么", "担心", "怕", "多少", "收费", "几", "该",
];

fn implies_question(text: &str) -> bool {
    IMPLIED_QUESTION.iter().any(|w| text.contains(w))
}

/// Modal verbs a yes/no question turns on ("能正常进家门吗", "会用App吗").
const ECHO_MODALS: &[&str] = &["可以", "能", "会", "有", "在", "要", "需要", "用"];

/// A yes or no said as the question's own verb ("能进" / "进不去" to "您能正常进家门
/// 吗？"): the first clause of the reply starts with the modal the question turns
/// on, or negates it. `None` when the reply does not echo the question.
fn echo_answer(reply: &str, question: &str) -> Option<bool> {
    let asked = question
        .split(['。', '！', '；', '，'])
        .rev()
        .find(|s| s.contains('吗') || s.contains('？'))?;
    let first: String = reply
        .split(['，', ',', '。', '！', '？', ' '])
        .find(|s| !s.trim().is_empty())?
        .trim()
        .trim_start_matches(['嗯', '哦', '呃', '啊', '噢'])
        .to_string();
    if first.chars().count() > 5 || first.is_empty() {
        return None;
    }
    let modal = ECHO_MODALS.iter().find(|m| asked.contains(**m))?;
    if first.starts_with(&format!("不{modal}")) || first.starts_with(&format!("没{modal}")) {
        return Some(false);
    }
    if first.starts_with(modal) {
        // "进不去", "能进不了": a 不 after the verb says no.
        return Some(!first.contains('不') && !first.contains('没'));
    }
    // "进不去" with no modal: the question's verb followed by 不.
    let verb: String = asked
        .split_once(modal)
        .map(|(_, v)| v.trim_start_matches("正常").chars().take(1).collect())
        .unwrap_or_default();
    (!verb.is_empty() && first.starts_with(&format!("{verb}不"))).then_some(false)
}

/// The sentence without its clauses that carry a phone number or serial
/// ("网断了，我手机号138…，赶紧派人来修" → "网断了，赶紧派人来修").
fn without_value_clauses(text: &str) -> String {
    let kept: Vec<&str> = text
        .split(['，', ',', '。', '；', ';'])
        .filter(|c| {
            !c.trim().is_empty()
                && slots::extract_phone(c).is_none()
                && slots::extract_serial(c).is_none()
        })
        .collect();
    if kept.is_empty() {
        text.to_string()
    } else {
        kept.join("，")
    }
}

/// "下周吧", "过几天再说": a time asked for with neither a day nor an hour in what
/// follows the refusal.
fn vague_time(text: &str) -> bool {
    let tail = CHANGE_WORDS
        .iter()
        .filter_map(|w| text.rfind(w).map(|i| i + w.len()))
        .max()
        .map_or(text, |i| &text[i..]);
    let clock = [
        "点", ":", "：", "上午", "下午", "早上", "晚上", "中午", "傍晚", "号",
    ]
    .iter()
    .any(|w| tail.contains(w));
    let loose = [
        "下周",
        "下个星期",
        "下星期",
        "下礼拜",
        "过几天",
        "过两天",
        "改天",
        "下个月",
        "以后",
    ]
    .iter()
    .any(|w| tail.contains(w));
    loose && !clock && slots::date_words(tail).is_none()
}

/// "…请问是林晓雨吗？", "请问您是王建华本人吗？": a line that asks whether the
/// callee is the person called. The first step asking it again after the opening
/// did is skipped.
fn asks_identity(line: &str) -> bool {
    let tail = line
        .rsplit(['。', '，', '！', '.', ','])
        .find(|c| !c.trim().is_empty())
        .unwrap_or(line);
    ["请问是", "请问您是", "您是", "你是"]
        .iter()
        .any(|k| tail.contains(k))
        && (tail.contains('吗') || tail.contains("是不是"))
        && !["方便", "满意", "需要", "可以"]
            .iter()
            .any(|k| tail.contains(k))
}

/// A step that asks whether the callee is the person called ("请问您是王建华本人吗？").
fn is_identity_step(st: &Step) -> bool {
    st.title.contains("身份") || st.text().contains("本人")
}

/// "可以，复诊要多久啊" / "行，我这边需要提前收拾点什么吗": a plain yes as the first
/// clause and a question after it; the question, or `None`. A question that changes
/// or puts a condition on the yes ("可以，能不能改到下午") is not split off.
fn yes_then_question(text: &str, now: DateTime<FixedOffset>) -> Option<String> {
    let (first, rest) = text.split_once(['，', ',', '。', ' '])?;
    let first = normalize(first);
    const YES: &[&str] = &[
        "可以",
        "可以的",
        "行",
        "行的",
        "好",
        "好的",
        "能",
        "能来",
        "能去",
        "对",
        "是",
        "是的",
        "没问题",
        "嗯",
        "嗯嗯",
        "没事",
        "都行",
        "行啊",
        "好啊",
        "可以啊",
        "是我",
        "我是",
        "我就是",
        "是本人",
        "本人",
        "对是我",
        "嗯是我",
        "对的",
    ];
    if !YES.contains(&first.as_str()) {
        return None;
    }
    let rest = rest.trim();
    let asked = classify(rest, now);
    let changes = says_change(rest)
        || slots::wanted_time(rest, now).is_some()
        || ["改", "换", "不过", "但是", "可是"]
            .iter()
            .any(|w| rest.contains(w));
    (asked.question_like && asked.intent == Intent::Question && !changes).then(|| rest.to_string())
}

/// "你们要来修洗衣机是吧": a guess at why the agent rings, put up for a yes, in the
/// words of the agent's own line: the call's purpose confirmed, not a Q&A question.
fn echoes_purpose(text: &str, line: &str) -> bool {
    let t = normalize(text);
    let tagged = ["是吧", "对吧", "是不是", "对不对", "是吗", "对吗", "吧"]
        .iter()
        .any(|w| t.ends_with(w));
    tagged
        && content_bigrams(&t)
            .iter()
            .filter(|b| line.contains(b.as_str()))
            .count()
            >= 2
}

/// The remark in a reply to "满意吗？有什么意见…" that also says there is nothing
/// else ("一般吧，电话等得有点久，没别的了"): the whole reply when it holds more than
/// the "nothing else" and a one-word verdict.
fn feedback_remark(text: &str) -> Option<&str> {
    let mut rest = text.to_string();
    for w in [
        "没别的问题了",
        "没有别的问题了",
        "没其他问题了",
        "没别的了",
        "没别的",
        "没有了",
        "没了",
        "没有",
        "谢谢你",
        "谢谢",
        "满意",
        "挺好的",
        "挺好",
        "还行",
        "可以",
    ] {
        rest = rest.replace(w, "");
    }
    (rest.chars().filter(|c| super::text::is_han(*c)).count() >= 4).then_some(text)
}

/// The clause of a step's own line that says where the asked value is found
/// ("…供热户号，在缴费发票或者供热卡上，…" → "在缴费发票或者供热卡上").
fn where_in_line(line: &str) -> Option<String> {
    line.split(['，', ',', '。', '；', '？', '?', '！'])
        .map(str::trim)
        .find(|cl| {
            let cl = cl
                .trim_start_matches("一般")
                .trim_start_matches('就')
                .trim_start_matches('都');
            cl.starts_with('在') && cl.chars().count() >= 4
        })
        .map(str::to_string)
}

/// Whether `text` asks where something is ("户号在哪能看到啊").
fn asks_where(text: &str) -> bool {
    ["在哪", "哪里", "哪儿", "去哪", "什么地方", "哪能", "哪看"]
        .iter()
        .any(|w| text.contains(w))
}

/// A time the caller's question pins with a part of the day ("下午最晚几点还给打？")
/// that a line said earlier in the call answers ("…下午一点半到四点都可以"): that
/// clause of the line.
fn time_in_lines<'a>(question: &str, lines: impl Iterator<Item = &'a str>) -> Option<String> {
    if !["几点", "什么时候", "最晚", "最早", "多晚", "多早"]
        .iter()
        .any(|w| question.contains(w))
    {
        return None;
    }
    const PARTS: &[&str] = &[
        "上午",
        "下午",
        "中午",
        "早上",
        "晚上",
        "周末",
        "周六",
        "周日",
        "工作日",
        "平时",
    ];
    let parts: Vec<&str> = PARTS
        .iter()
        .copied()
        .filter(|p| question.contains(p))
        .collect();
    if parts.is_empty() {
        return None;
    }
    lines
        .flat_map(|l| l.split(['，', '。', '；', '？', '！', ',', '、']))
        .find(|cl| parts.iter().all(|p| cl.contains(p)) && cl.contains('点'))
        .map(|cl| cl.trim().to_string())
}

/// Words that only frame a condition ("如果客户要约…").
const CONDITION_FRAME: &[&str] = &[
    "如果",
    "若是",
    "若",
    "客户",
    "学员",
    "用户",
    "对方",
    "来电人",
    "说",
    "想要",
    "要",
    "想",
    "预约",
    "约",
    "上门",
    "或者",
    "还是",
    "的",
    "在",
    "是",
    "时间",
    "安排",
];

/// The condition without its frame and the words `used`: what else it names.
fn condition_rest(cond: &str, used: &[&str]) -> String {
    let mut rest = cond.to_string();
    for w in used.iter().chain(CONDITION_FRAME) {
        rest = rest.replace(w, "");
    }
    rest
}

/// A time past a limit the condition sets (今天, 周日, 周末, 晚上, 六点以后): what is
/// left of the condition when it is.
fn time_past_limit(cond: &str, value: &str, now: DateTime<FixedOffset>) -> Option<String> {
    use chrono::{Datelike, Timelike, Weekday};
    let t = DateTime::parse_from_rfc3339(value).ok()?;
    let day = t.weekday();
    let limits: [(&[&str], bool); 4] = [
        (
            &["今天", "当天", "当日"],
            t.date_naive() == now.date_naive(),
        ),
        (&["周日", "星期天", "星期日", "礼拜天"], day == Weekday::Sun),
        (&["周六", "星期六", "礼拜六"], day == Weekday::Sat),
        (&["周末"], matches!(day, Weekday::Sat | Weekday::Sun)),
    ];
    let mut used: Vec<&str> = Vec::new();
    let mut limited = false;
    let mut hit = false;
    for (words, past) in limits {
        for w in words.iter().filter(|w| cond.contains(*w)) {
            used.push(w);
            limited = true;
            hit |= past;
        }
    }
    // "晚上六点以后" / "六点以后": a clock limit; "晚上" alone: from six.
    let evening = ["晚上", "夜里", "夜间"];
    match hour_limit(cond) {
        Some((h, w)) => {
            used.push(w);
            used.extend(evening.iter().filter(|e| cond.contains(*e)));
            limited = true;
            hit |= t.hour() >= h;
        }
        None => {
            for w in evening.iter().filter(|e| cond.contains(*e)) {
                used.push(w);
                limited = true;
                hit |= t.hour() >= 18;
            }
        }
    }
    (limited && hit).then(|| condition_rest(cond, &used))
}

/// "晚上六点以后", "18点后": the hour a condition's limit starts at, and the words.
fn hour_limit(cond: &str) -> Option<(u32, &'static str)> {
    const NUM: &[(&str, u32)] = &[
        ("十二", 12),
        ("十一", 11),
        ("十", 10),
        ("九", 9),
        ("八", 8),
        ("七", 7),
        ("六", 6),
        ("五", 5),
        ("四", 4),
        ("三", 3),
        ("两", 2),
        ("二", 2),
        ("一", 1),
    ];
    let (p, key) = ["点钟以后", "点以后", "点之后", "点后"]
        .iter()
        .find_map(|k| cond.find(k).map(|p| (p, *k)))?;
    let head = &cond[..p];
    let digits: String = head
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut h: u32 = if !digits.is_empty() {
        digits.parse().ok()?
    } else {
        NUM.iter()
            .find(|(w, _)| head.ends_with(w))
            .map(|(_, n)| *n)?
    };
    let evening = ["晚上", "下午", "傍晚", "夜里"]
        .iter()
        .any(|w| head.contains(w));
    if evening && h < 12 {
        h += 12;
    }
    Some((h, key))
}

/// A count past a limit the condition sets (超过4个, 多于三台).
fn count_past_limit(cond: &str, value: &str) -> Option<String> {
    let n: u32 = slots::extract_quantity(value)?.parse().ok()?;
    for k in ["超过", "多于", "大于", "超出"] {
        if let Some(p) = cond.find(k) {
            let limit: u32 = slots::extract_quantity(&cond[p + k.len()..])?
                .parse()
                .ok()?;
            return (n > limit)
                .then(|| condition_rest(cond, &[k]).replace(|c: char| c.is_ascii_digit(), ""));
        }
    }
    None
}

/// "请问您是要预约练车，还是有别的事情要办？": the service an inbound opening offers
/// first ("预约练车").
fn offered_service(opening: &str) -> Option<String> {
    let (before, _) = opening.split_once("还是")?;
    let start = ["是要", "是想", "想要", "需要", "要"]
        .iter()
        .filter_map(|k| before.rfind(k).map(|p| p + k.len()))
        .max()?;
    let offer = before[start..]
        .trim_end_matches(['，', ',', ' ', '呢'])
        .trim();
    (offer.chars().count() >= 2 && offer.chars().count() <= 10).then(|| offer.to_string())
}

/// "您这次要练科目二还是科目三？": the two answers an either-or question offers,
/// the first cut to the second's length ("科目二", "科目三").
fn either_options(line: &str) -> Vec<String> {
    let Some((a, b)) = line.split_once("还是") else {
        return Vec::new();
    };
    let b: String = b
        .chars()
        .take_while(|c| !"，。？！,.?!、呢啊".contains(*c))
        .collect();
    let n = b.chars().count();
    if !(2..=6).contains(&n) {
        return Vec::new();
    }
    let a: Vec<char> = a.trim_end_matches(['，', ',']).chars().collect();
    if a.len() < n {
        return Vec::new();
    }
    vec![a[a.len() - n..].iter().collect(), b]
}

fn is_question_kind(k: StepKind) -> bool {
    k != StepKind::Statement
}

impl Conversation {
    /// Starts a conversation on `script` with campaign `vars` at time `now`.
    pub fn new(
        script: &Script,
        vars: &BTreeMap<String, String>,
        now: DateTime<FixedOffset>,
    ) -> Result<Self, DialogueError> {
        let script = script.with_vars(vars)?;
        let branch_only = script.branch_only_steps();
        super::intent::warm_up();
        let kb = Arc::new(KnowledgeBase::new(&script.kb));
        let op = &script.opening;
        let asks = op.contains('？') || op.contains('?') || op.contains('吗');
        let opening_kind = if !asks {
            StepKind::Statement
        } else if op.contains("有什么可以帮")
            || op.contains("有什么能帮")
            || op.contains("什么问题")
        {
            StepKind::AnyQuestions
        } else if op.contains("方便") || op.contains("打扰") || op.contains("时间") {
            StepKind::Convenience
        } else if asks_open_need(op) {
            StepKind::AnyQuestions
        } else {
            StepKind::Confirm
        };
        let first = &script.steps[0];
        let skip_first_step = op == &first.text()
            || (opening_kind == StepKind::Convenience && first.kind == StepKind::Convenience)
            || (opening_kind == StepKind::AnyQuestions && step_asks_need(first, op))
            || (asks_identity(op)
                && is_identity_step(first)
                && first.text().split_inclusive(['？', '?']).any(asks_identity));
        Ok(Self {
            script: Arc::new(script),
            kb,
            vars: vars.clone(),
            state: State::NotStarted,
            resume_at: 0,
            opening_kind,
            skip_first_step,
            last_lines: Vec::new(),
            repeats: 0,
            silences: 0,
            reprompts: 0,
            held: false,
            late_turn_open: false,
            resume_state: None,
            heard_anything: false,
            answered: 0,
            docs_requested: false,
            fields: BTreeMap::new(),
            path: Vec::new(),
            outcome: None,
            callback_at: None,
            started: now,
            transfer_enabled: false,
            transfer_after_failures: 2,
            failures: 0,
            before_offer: None,
            typed: Vec::new(),
            prefill: BTreeMap::new(),
            affirmed_ahead: Default::default(),
            denied_ahead: Default::default(),
            branch_kind: None,
            after_new_value: None,
            branch_offer: false,
            branches_taken: Default::default(),
            branch_only,
            value_retries: 0,
            need_noted: false,
            need_text: None,
        })
    }

    /// Enables transfers to a person (the driver has a `[transfer] target` and the
    /// script does not forbid them) and sets after how many consecutive
    /// not-understood turns a transfer is offered (0 = never). Without this, a caller
    /// asking for a person is promised a callback by a person instead.
    pub fn set_transfer(&mut self, enabled: bool, after_failures: u32) {
        self.transfer_enabled = enabled;
        self.transfer_after_failures = after_failures;
    }

    /// The driver's transfer finished: connected (the conversation ends as
    /// `transferred`, nothing more to say) or failed (the caller hears so, a
    /// callback by a person is scheduled with the reason, and the call ends).
    pub fn on_transfer_result(
        &mut self,
        now: DateTime<FixedOffset>,
        result: TransferResult,
    ) -> TurnResult {
        let mut actions = Vec::new();
        if self.state == State::Ended {
            return self.result(Intent::Transfer, actions, None);
        }
        match result {
            TransferResult::Connected { target } => {
                self.record("transferred_to", &target, &mut actions);
                self.outcome = Some(Outcome::Transferred);
                self.state = State::Ended;
                self.path.push("transfer".into());
            }
            TransferResult::Failed { why } => {
                self.record("transfer_failed", &why, &mut actions);
                actions.push(self.builtin(TRANSFER_FAILED));
                let reason = format!("transfer failed: {why}");
                self.human_callback(now, &reason, &mut actions);
            }
        }
        self.result(Intent::Transfer, actions, None)
    }

    /// An operator pressed "transfer" in the console: the same path as a caller's
    /// request, whatever the script says.
    pub fn operator_transfer(&mut self, _now: DateTime<FixedOffset>) -> TurnResult {
        let mut actions = Vec::new();
        if !matches!(self.state, State::Ended | State::Transferring) {
            self.before_offer = None;
            self.state = State::Transferring;
            actions.push(Action::Transfer {
                reason: TransferReason::Operator,
                request: String::new(),
            });
        }
        self.result(Intent::Transfer, actions, None)
    }

    /// The caller (or repeated misunderstanding) wants a person: transfer when
    /// possible, otherwise promise a callback by a person and end the call.
    fn hand_to_person(
        &mut self,
        reason: TransferReason,
        request: &str,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        self.record("transfer_requested", reason.as_str(), actions);
        if self.transfer_enabled {
            self.state = State::Transferring;
            actions.push(Action::Transfer {
                reason,
                request: request.to_string(),
            });
        } else {
            actions.push(self.builtin(HUMAN_CALLBACK));
            let why = match reason {
                TransferReason::CallerAsked => format!("caller asked for a person: {request}"),
                _ => format!("{}: {request}", reason.as_str()),
            };
            self.human_callback(now, &why, actions);
        }
    }

    fn human_callback(
        &mut self,
        now: DateTime<FixedOffset>,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        let at = now + Duration::minutes(HUMAN_CALLBACK_MINUTES);
        self.callback_at = Some(at);
        self.record("callback_at", &at.to_rfc3339(), actions);
        self.record("callback_by", "person", actions);
        actions.push(Action::ScheduleCallback {
            at,
            by_person: true,
            reason: Some(reason.to_string()),
        });
        self.finish(Outcome::CallbackScheduled, actions);
    }

    pub fn script(&self) -> &Script {
        &self.script
    }
    pub fn knowledge_base(&self) -> &KnowledgeBase {
        &self.kb
    }
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }
    /// True after the goodbye of a completed call, while the caller may still say
    /// one thing before hanging up ("哦对了，电话说错了，是…"); drivers keep
    /// listening a moment before they hang up.
    pub fn listens_after_goodbye(&self) -> bool {
        self.state == State::Ended && self.late_turn_open
    }
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }
    pub fn callback_at(&self) -> Option<DateTime<FixedOffset>> {
        self.callback_at
    }
    pub fn started(&self) -> DateTime<FixedOffset> {
        self.started
    }
    /// Steps visited, in order ("opening", "1", "2", …, "closing").
    pub fn step_path(&self) -> &[String] {
        &self.path
    }

    /// The step id the agent is at now.
    pub fn current_step(&self) -> String {
        match &self.state {
            State::NotStarted => "start".into(),
            State::Opening => "opening".into(),
            State::Step(i) => self.script.steps[*i].id(),
            State::AwaitCallbackTime { .. } => "callback".into(),
            State::AwaitEmail { .. } | State::ConfirmEmail { .. } => "email".into(),
            State::OfferTransfer | State::Transferring => "transfer".into(),
            State::Ended => "closing".into(),
        }
    }

    /// What the agent's last prompt expects (used by the simulator and drivers).
    pub fn expecting(&self) -> Expecting {
        match &self.state {
            State::Opening => Expecting::Step(self.opening_kind),
            State::Step(i) => Expecting::Step(self.script.steps[*i].kind),
            State::AwaitCallbackTime { .. } => Expecting::CallbackTime,
            State::AwaitEmail { .. } => Expecting::Email,
            State::ConfirmEmail { .. } => Expecting::EmailConfirmation,
            State::OfferTransfer => Expecting::Step(StepKind::Confirm),
            State::NotStarted | State::Transferring | State::Ended => Expecting::Nothing,
        }
    }

    /// Every line that can be said without knowing the callee's words.
    pub fn all_fixed_lines(&self) -> Vec<FixedLine> {
        let mut out: Vec<FixedLine> = Vec::new();
        let mut push = |step: Option<String>, text: &str, interruptible: bool| {
            if !text.is_empty() && !out.iter().any(|l| l.text == text) {
                out.push(FixedLine {
                    step,
                    text: text.to_string(),
                    interruptible,
                });
            }
        };
        push(Some("opening".into()), &self.script.opening, true);
        push(
            Some("opening".into()),
            &short_question(&self.script.opening),
            true,
        );
        for s in &self.script.steps {
            for l in &s.lines {
                push(Some(s.id()), l, s.interruptible);
            }
            push(Some(s.id()), &rephrase(&s.text()), s.interruptible);
            push(Some(s.id()), &short_question(&s.text()), s.interruptible);
            for c in &s.conditionals {
                push(Some(s.id()), &c.line, s.interruptible);
            }
        }
        for q in &self.script.kb {
            push(None, &q.answer, true);
        }
        for c in &self.script.closing {
            push(Some("closing".into()), c, true);
        }
        for b in BUILTIN {
            push(None, b, true);
        }
        out
    }

    fn say(&self, text: &str, step: Option<usize>, fixed: bool) -> Action {
        let (id, interruptible) = match step {
            Some(i) => (
                Some(self.script.steps[i].id()),
                self.script.steps[i].interruptible,
            ),
            None => (Some(self.current_step()), true),
        };
        Action::Say {
            text: text.to_string(),
            step: id,
            interruptible,
            fixed,
        }
    }

    fn builtin(&self, text: &str) -> Action {
        Action::Say {
            text: text.to_string(),
            step: Some(self.current_step()),
            interruptible: true,
            fixed: true,
        }
    }

    fn record(&mut self, key: &str, value: &str, actions: &mut Vec<Action>) {
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        let entry = self.fields.entry(key.to_string()).or_default();
        if entry.is_empty() {
            *entry = v.to_string();
        } else if !entry.split('；').any(|x| x == v) {
            entry.push('；');
            entry.push_str(v);
        }
        actions.push(Action::RecordField {
            key: key.to_string(),
            value: v.to_string(),
        });
    }

    /// Records a typed value as the step's field, replacing (not appending to) an
    /// earlier value of the same key.
    fn set_field(&mut self, key: &str, value: &str, kind: FieldKind, actions: &mut Vec<Action>) {
        self.fields.insert(key.to_string(), value.to_string());
        self.typed.retain(|(k, _)| k != key);
        self.typed.push((key.to_string(), kind));
        actions.push(Action::RecordField {
            key: key.to_string(),
            value: value.to_string(),
        });
    }

    /// "不对，是602，不是502": patches the field that held the old value (or the
    /// latest field of the new value's kind), keeps the old value in the record as
    /// a correction, and acknowledges. False when nothing fitted.
    fn apply_correction(&mut self, text: &str, actions: &mut Vec<Action>) -> bool {
        let Some(corr) = slots::correction(text) else {
            return self.correct_typed(text, actions);
        };
        // "最后两位是二一，AH26038821": the whole new value said with the cue replaces
        // the latest field of its kind.
        let whole = self.typed.iter().rev().find_map(|(k, kind)| {
            let v = match kind {
                FieldKind::Phone => slots::extract_phone(text).filter(|p| p.len() >= 11),
                FieldKind::Serial => slots::extract_serial(text)
                    .filter(|v| v.chars().any(|c| c.is_ascii_alphabetic())),
                _ => None,
            }?;
            let old = self.fields.get(k)?;
            (*old != v && old.len() == v.len()).then(|| (k.clone(), *kind, v))
        });
        let target = if whole.is_some() {
            whole
        } else if corr.tail {
            // "最后四位是8889": the end of the latest phone number (or letters-and-
            // digits number: "卡号最后两位是二一").
            self.typed
                .iter()
                .rev()
                .find(|(k, kind)| {
                    matches!(kind, FieldKind::Phone | FieldKind::Serial)
                        && self.fields.get(k).is_some_and(|v| {
                            v.len() > corr.new.len() && v.is_char_boundary(v.len() - corr.new.len())
                        })
                })
                .cloned()
                .map(|(k, kind)| {
                    let v = self.fields.get(&k).cloned().unwrap_or_default();
                    (
                        k,
                        kind,
                        format!("{}{}", &v[..v.len() - corr.new.len()], corr.new),
                    )
                })
        } else if let Some(old) = &corr.old {
            self.typed
                .iter()
                .rev()
                .find(|(k, _)| self.fields.get(k).is_some_and(|v| v.contains(old.as_str())))
                .cloned()
                .map(|(k, kind)| {
                    let v = self.fields.get(&k).cloned().unwrap_or_default();
                    (k, kind, v.replacen(old.as_str(), &corr.new, 1))
                })
        } else {
            self.typed
                .iter()
                .rev()
                .find(|(k, kind)| match kind {
                    FieldKind::Phone => slots::extract_phone(text).is_some(),
                    FieldKind::Serial => slots::extract_serial(text).is_some(),
                    FieldKind::Number => slots::extract(*kind, text, self.started).is_some(),
                    // "说错了，是16幢，东冠小区16幢803": a new address, or the unit of
                    // the recorded one said anew.
                    FieldKind::Address => {
                        slots::extract(*kind, text, self.started).is_some()
                            || self
                                .fields
                                .get(k)
                                .is_some_and(|v| replace_same_unit(v, &corr.new).is_some())
                    }
                    _ => false,
                })
                .cloned()
                .map(|(k, kind)| {
                    let same_unit = self
                        .fields
                        .get(&k)
                        .and_then(|v| replace_same_unit(v, &corr.new));
                    let v = if kind == FieldKind::Address {
                        // The last clause with an address says it whole ("是16幢，东冠小区
                        // 16幢803"); the recorded district and road stay in front of it.
                        text.rsplit(['，', ',', '。'])
                            .find_map(|cl| slots::extract(kind, cl, self.started))
                            .map(|new| match self.fields.get(&k) {
                                Some(old) => keep_address_prefix(old, &new),
                                None => new,
                            })
                            .or(same_unit)
                    } else {
                        slots::extract(kind, text, self.started).or(same_unit)
                    };
                    (k, kind, v.unwrap_or(corr.new.clone()))
                })
                .or_else(|| self.replace_same_length_number(&corr.new))
        };
        // A value the agent read out for confirmation ("地址是…3幢502室，对吗？") and
        // the caller patches ("是4幢，不是3幢"): the confirmed value, corrected.
        let confirming = self.step_index().filter(|&i| {
            let st = &self.script.steps[i];
            !self.fields.contains_key(&st.title)
                && corr
                    .old
                    .as_ref()
                    .is_some_and(|o| st.text().contains(o.as_str()))
        });
        let target = target.or_else(|| {
            let i = confirming?;
            let old = corr.old.as_ref()?;
            let st = &self.script.steps[i];
            let line = st.text();
            let kinds = st.field.into_iter().chain([
                FieldKind::Address,
                FieldKind::Phone,
                FieldKind::Serial,
            ]);
            kinds
                .filter_map(|k| slots::extract(k, &line, self.started).map(|v| (k, v)))
                .find(|(_, v)| v.contains(old.as_str()))
                .map(|(k, v)| (st.title.clone(), k, v.replacen(old.as_str(), &corr.new, 1)))
        });
        let Some((key, kind, value)) = target else {
            return self.correct_typed(text, actions);
        };
        let confirmed = confirming.is_some_and(|i| self.script.steps[i].title == key);
        let old_value = self.fields.get(&key).cloned().unwrap_or_default();
        self.set_field(&key, &value, kind, actions);
        self.record(
            "corrections",
            &format!("{key}: {old_value} → {value}"),
            actions,
        );
        actions.push(Action::Say {
            text: format!("好的，已经更正为{value}。"),
            step: Some(self.current_step()),
            interruptible: true,
            fixed: false,
        });
        if confirmed {
            self.advance(actions);
        }
        true
    }

    /// What the caller says after the goodbye of a completed call, before hanging
    /// up. A corrected value ("电话说错了，是…") or a changed time ("哎不行，改成
    /// 后天下午三点吧") replaces the recorded one and is confirmed; a question the
    /// Q&A answers is answered; anything else (好的, 再见, 谢谢) leaves the call as it
    /// ended. Either way the call then ends: one late turn only.
    fn on_late_turn(&mut self, text: &str, now: DateTime<FixedOffset>) -> TurnResult {
        self.late_turn_open = false;
        let c = classify(text, now);
        let mut actions = Vec::new();
        let mut kb_hit = None;
        let changed = (slots::is_correction(&c.text) || slots::changes_time(&c.text))
            && (self.apply_correction(&c.text, &mut actions)
                || self.change_time(&c.text, &mut actions));
        let mut bye = LATE_BYE;
        if changed {
            // The correction's own confirmation is the reply.
        } else if let Some(line) = super::intent::danger(&c.text).map(danger_line) {
            // "哦对了，我爸刚才晕倒了": whom to call comes before the goodbye.
            self.record("urgent", &c.text, &mut actions);
            actions.push(self.builtin(line));
            bye = LATE_NOTED_BYE;
        } else if c.intent == Intent::Hostile {
            // "以后别再打了" after the goodbye is still a request to honour.
            self.record("do_not_call", "true", &mut actions);
            self.record("reason", &c.text, &mut actions);
            self.outcome = Some(Outcome::DoNotCall);
            actions.push(self.builtin(NO_MORE_CALLS_NOTED));
            bye = LATE_NOTED_BYE;
        } else if c.intent == Intent::Question {
            if let Some((h, e)) = self.kb.answer(&c.text) {
                let (answer, question) = (e.answer.clone(), e.question.clone());
                kb_hit = Some((h.index, h.confidence));
                self.answered += 1;
                actions.push(self.say(&answer, None, true));
                self.record("questions_answered", &question, &mut actions);
            } else {
                // Never hang up on a question: it is written down for a person.
                actions.push(self.builtin(HOLDING));
                self.record("open_questions", &c.text, &mut actions);
                bye = LATE_NOTED_BYE;
            }
        } else if !matches!(c.intent, Intent::Goodbye | Intent::Agree | Intent::Silence)
            || !is_short(&c.text)
        {
            // "哦对了，我的账号是…": anything said beyond thanks and goodbye is kept,
            // in the caller's words, and acknowledged; hanging up on it would lose it
            // without a word.
            self.record("remarks", &c.text, &mut actions);
            actions.push(self.builtin(NOTED));
            bye = LATE_NOTED_BYE;
        }
        if !actions.is_empty() {
            actions.push(self.builtin(bye));
            actions.push(Action::HangUp {
                outcome: self.outcome.unwrap_or(Outcome::Completed),
            });
        }
        self.result(c.intent, actions, kb_hit)
    }

    /// "改成后天下午三点吧": the latest recorded time, changed to the one named after
    /// the change word.
    fn change_time(&mut self, text: &str, actions: &mut Vec<Action>) -> bool {
        let Some(after) = slots::after_time_change(text) else {
            return false;
        };
        let Some(value) = slots::wanted_time(after, self.started) else {
            return false;
        };
        let Some(key) = self
            .typed
            .iter()
            .rev()
            .find(|(_, kind)| *kind == FieldKind::Time)
            .map(|(k, _)| k.clone())
        else {
            return false;
        };
        let old = self.fields.get(&key).cloned().unwrap_or_default();
        if old == value {
            return false;
        }
        self.replace_field(&key, FieldKind::Time, &old, &value, "改为", actions);
        true
    }

    /// Records `value` in place of `old` under `key`, notes the correction and
    /// confirms it aloud ("好的，已经更正为…" / "好的，已经改为…").
    fn replace_field(
        &mut self,
        key: &str,
        kind: FieldKind,
        old: &str,
        value: &str,
        verb: &str,
        actions: &mut Vec<Action>,
    ) {
        self.set_field(key, value, kind, actions);
        self.record("corrections", &format!("{key}: {old} → {value}"), actions);
        actions.push(self.value_confirmed(verb, value, self.current_step()));
    }

    /// "好的，已经更正为…" / "好的，已经为您改为…": a changed value said back, a time
    /// in words.
    fn value_confirmed(&self, verb: &str, value: &str, step: String) -> Action {
        let said = match chrono::DateTime::parse_from_rfc3339(value) {
            Ok(t) => speak_time(t, self.started),
            Err(_) => value.to_string(),
        };
        Action::Say {
            text: format!("好的，已经{verb}{said}。"),
            step: Some(step),
            interruptible: true,
            fixed: false,
        }
    }

    /// The first step still to come: after the current one, or after an opening
    /// (past the first step when the opening asks its question).
    fn next_step(&self) -> Option<usize> {
        match self.state {
            State::Step(i) => Some(i + 1),
            State::Opening => Some(usize::from(self.skip_first_step)),
            _ => None,
        }
    }

    /// "不对，是刘方，方向的方", "不对，我看错了，是一万八千", "不对，周六有事，改成周日
    /// 上午吧": a name, count or time given earlier, said again after a correction
    /// cue, replaces the recorded one (they carry no digit string for
    /// [`slots::correction`]). The latest such field that the new words fit wins.
    fn correct_typed(&mut self, text: &str, actions: &mut Vec<Action>) -> bool {
        let Some((_, after)) = slots::split_at_last_strong_correction(text) else {
            return false;
        };
        let found = self.typed.iter().rev().find_map(|(key, kind)| {
            let value = match kind {
                FieldKind::Name => slots::extract_name(after),
                FieldKind::Number => slots::extract_quantity(after),
                FieldKind::Time => slots::wanted_time(after, self.started),
                _ => None,
            }?;
            let old = self.fields.get(key).cloned().unwrap_or_default();
            (old != value).then(|| (key.clone(), *kind, old, value))
        });
        let found = found.or_else(|| self.named_text_correction(text));
        let Some((key, kind, old_value, value)) = found else {
            return false;
        };
        self.replace_field(&key, kind, &old_value, &value, "更正为", actions);
        true
    }

    /// "馆说错了，我是要去高新分馆还": a free-text answer corrected by naming what
    /// it was about (馆 in the step "确认归还的馆") before the cue; the words after the
    /// cue are the new answer.
    fn named_text_correction(&self, text: &str) -> Option<(String, FieldKind, String, String)> {
        let (before, after) = slots::split_at_last_strong_correction(text)?;
        let named: Vec<char> = before
            .chars()
            .filter(|c| super::text::is_han(*c) && !"我你的了是这那个刚才就都说".contains(*c))
            .collect();
        let mut after =
            after.trim_matches(|c: char| !c.is_alphanumeric() && !super::text::is_han(c));
        // "我是要去高新分馆…": who wants it is no part of the value.
        for lead in [
            "我是要去",
            "我是要",
            "我要去",
            "我是想",
            "我想",
            "应该是",
            "我是",
            "是",
        ] {
            if let Some(rest) = after.strip_prefix(lead) {
                after = rest;
                break;
            }
        }
        if named.is_empty() || after.chars().count() < 2 {
            return None;
        }
        let st = self.script.steps.iter().rev().find(|st| {
            st.field.is_none_or(|k| k == FieldKind::Text)
                && st.kind == StepKind::Info
                && self.fields.contains_key(&st.title)
                && named
                    .iter()
                    .any(|c| st.title.contains(*c) || st.collects.iter().any(|r| r.contains(*c)))
        })?;
        let old = self.fields.get(&st.title).cloned().unwrap_or_default();
        (old != after).then(|| (st.title.clone(), FieldKind::Text, old, after.to_string()))
    }

    /// The yes/no steps after the current one that `text` already answers "yes" in a
    /// later clause: the clause names the step's subject (电话, 地址, or the words it
    /// asks about: 家里有人) with nothing negative or changing in it.
    fn note_affirmed_ahead(&mut self, text: &str) {
        let Some(next) = self.next_step() else {
            return;
        };
        let clauses: Vec<&str> = text
            .split(['，', ',', '。', '；', ';', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if clauses.len() < 2 {
            return;
        }
        const NOT: &[&str] = &["不", "没", "换", "改", "别", "错", "吗", "？", "?"];
        for (j, st) in self.script.steps.iter().enumerate().skip(next).take(2) {
            if st.kind != StepKind::Confirm {
                break;
            }
            let mut subject: Vec<String> = match st.field {
                Some(FieldKind::Phone) => vec!["电话".into(), "号码".into(), "手机".into()],
                Some(FieldKind::Address) => vec!["地址".into()],
                _ => Vec::new(),
            };
            // What the question asks: "这个时间家里有人吗" → 家里有人.
            let q = st.text();
            let last = q
                .trim_end_matches(['？', '?', '。'])
                .rsplit(['，', ',', '。', '？', '?'])
                .next()
                .unwrap_or("")
                .trim_end_matches('吗');
            let asked = last
                .trim_start_matches("这个时间")
                .trim_start_matches("这个号码")
                .trim_start_matches("这个地址");
            if asked.chars().count() >= 2 && asked.chars().count() <= 6 {
                subject.push(asked.to_string());
            }
            // "您能过来吗" is answered "能来的": the modal with the verb's head.
            let core = asked.trim_start_matches(['您', '你']);
            if let Some(verb) = ["能", "可以", "会"]
                .iter()
                .find_map(|m| core.strip_prefix(m))
                .and_then(|v| v.chars().last())
            {
                for m in ["能", "可以", "会"] {
                    subject.push(format!("{m}{verb}"));
                }
            }
            // A yes/no about a service ("您需要我们上门取车吗？") is also answered by a
            // clause that asks for it in words of the question ("你们派人来取车吧").
            let shares_words = |c: &str| {
                st.field.is_none() && content_bigrams(c).iter().any(|b| q.contains(b.as_str()))
            };
            // "明天下午两点到四点没问题" / "周四能去" to a proposed slot: the slot said
            // back (its day, or its day and hour) with nothing against it.
            let proposed = if st.field == Some(FieldKind::Time) {
                proposed_times(&q, self.started)
            } else {
                Vec::new()
            };
            let names_slot = |c: &str| {
                slots::extract(FieldKind::Time, c, self.started).is_some_and(|v| {
                    proposed
                        .iter()
                        .any(|p| *p == v || p.get(..10) == v.get(..10) && !names_clock(c))
                })
            };
            let negated = |c: &str| {
                let c = c
                    .replace("没问题", "")
                    .replace("没事", "")
                    .replace("没关系", "");
                NOT.iter().any(|n| c.contains(n))
            };
            let yes = clauses[1..].iter().any(|c| {
                (subject.iter().any(|w| c.contains(w.as_str())) || shares_words(c) || names_slot(c))
                    && !negated(c)
            });
            if !yes {
                break;
            }
            self.affirmed_ahead.insert(j);
        }
    }

    /// "一台冰箱，不是以旧换新": a clause that denies what a yes/no step ahead asks
    /// about, in that question's words, answers it "no" before it is asked.
    fn note_denied_ahead(&mut self, text: &str, after: usize) {
        const NO: &[&str] = &["不是", "没有", "没", "不"];
        let clauses: Vec<&str> = text
            .split(['，', ',', '。', '；', ';', ' '])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        for (j, st) in self.script.steps.iter().enumerate().skip(after).take(2) {
            let line = st.text();
            let question = line.split_inclusive(['？', '?']).next().unwrap_or(&line);
            if !is_yes_no(question) && !["有没有", "是不是"].iter().any(|w| question.contains(w))
            {
                continue;
            }
            let denies = clauses.iter().any(|cl| {
                NO.iter()
                    .find_map(|n| cl.strip_prefix(n))
                    .is_some_and(|rest| {
                        // "没人困" to "有没有人被困在里面？": a short denial whose
                        // every word is the question's. Words any question has
                        // (不需要, 不用, 不是我) name nothing.
                        const EMPTY: &str = "了的吧啊呢呀需要用可以行好是有在我你您";
                        let han: Vec<char> = rest
                            .chars()
                            .filter(|c| super::text::is_han(*c) && !EMPTY.contains(*c))
                            .collect();
                        let short = (2..=4).contains(&han.len())
                            && han.iter().all(|c| question.contains(*c));
                        short
                            || content_bigrams(rest)
                                .iter()
                                .filter(|b| question.contains(b.as_str()))
                                .count()
                                >= 2
                    })
            });
            if denies {
                self.denied_ahead.insert(j);
            }
        }
    }

    /// Step `i`'s branch `line` asks nothing ("没关系，先按普通回收下单…"): it is
    /// said, the caller's words are noted as the branch taken, and the call goes on.
    fn settle_by_branch(
        &mut self,
        i: usize,
        line: &str,
        text: &str,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        self.branches_taken.insert(i);
        let key = self.script.steps[i].title.clone();
        self.record(&format!("branch:{key}"), text, actions);
        actions.push(self.say(line, Some(i), true));
        self.prefill_from(text, i + 1, now);
        self.advance(actions);
    }

    /// A yes to a confirmation step that proposes one time records that time as
    /// the step's value (the booked slot, not just "是").
    fn record_proposed_time(&mut self, actions: &mut Vec<Action>) {
        let Some(st) = self.step_index().and_then(|i| self.script.steps.get(i)) else {
            return;
        };
        if st.field != Some(FieldKind::Time) || self.branch_kind.is_some() {
            return;
        }
        let key = st.title.clone();
        if let [t] = proposed_times(&st.text(), self.started).as_slice() {
            let t = t.clone();
            self.set_field(&key, &t, FieldKind::Time, actions);
        }
    }

    /// "不对，是602" right after an address with a room number: the new number
    /// replaces the last number of the same length in the latest typed address
    /// (4幢2单元502 → 4幢2单元602).
    fn replace_same_length_number(&self, new: &str) -> Option<(String, FieldKind, String)> {
        if new.is_empty() || !new.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let (key, kind) = self
            .typed
            .last()
            .filter(|(_, k)| *k == FieldKind::Address)?
            .clone();
        let value = self.fields.get(&key)?;
        let runs: Vec<(usize, usize)> = {
            let mut out = Vec::new();
            let mut start = None;
            for (i, c) in value.char_indices() {
                match (c.is_ascii_digit(), start) {
                    (true, None) => start = Some(i),
                    (false, Some(s)) => {
                        out.push((s, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                out.push((s, value.len()));
            }
            out
        };
        let &(s, e) = runs.iter().rev().find(|(s, e)| e - s == new.len())?;
        (value[s..e] != *new).then(|| (key, kind, format!("{}{new}{}", &value[..s], &value[e..])))
    }

    /// "是我是我，正好昨天刚量过，一百三十四，八十六": a reading given with the yes,
    /// for step `j` when it asks for one (…是多少？): the clauses after the yes, in
    /// digits.
    fn prefill_reading(&mut self, text: &str, j: usize) {
        let Some(st) = self.script.steps.get(j) else {
            return;
        };
        if st.kind != StepKind::Info
            || !st.text().contains("多少")
            || self.prefill.contains_key(&j)
            || matches!(
                st.field,
                Some(FieldKind::Phone | FieldKind::Serial | FieldKind::Address | FieldKind::Time)
            )
        {
            return;
        }
        let Some((_, rest)) = text.split_once(['，', ',', '。', ' ']) else {
            return;
        };
        let digits = slots::numerals_to_digits(rest);
        let numbers = digits
            .split(|ch: char| !ch.is_ascii_digit())
            .filter(|r| r.len() >= 2)
            .count();
        if numbers >= 1 {
            self.prefill.insert(j, digits.trim().to_string());
        }
    }

    /// Values for later steps that the caller already gave ("漏水了，编号是QS…").
    fn prefill_from(&mut self, text: &str, after: usize, now: DateTime<FixedOffset>) {
        self.note_denied_ahead(text, after);
        for j in after..self.script.steps.len() {
            let st = &self.script.steps[j];
            let Some(kind) = st.field else { continue };
            // A time only with its day said ("电话139…，明天上午十点来就行"): a bare
            // clock or 一会儿 in a fault description is no appointment.
            let dated_time =
                kind == FieldKind::Time && slots::date_words(text).is_some() && names_clock(text);
            // A name only where the caller introduces it ("我叫孙丽华，想挂妇科").
            let named = kind == FieldKind::Name
                && ["我叫", "名字是", "姓名是", "名字叫"]
                    .iter()
                    .any(|w| text.contains(w));
            // A count only with the unit the step asks in ("屋里现在才十四度" for
            // "屋里现在大概多少度？"), and read from that clause.
            let counted = (kind == FieldKind::Number)
                .then(|| number_unit(&st.text()))
                .flatten()
                .and_then(|u| {
                    text.split(['，', ',', '。', '；'])
                        .find(|cl| cl.contains(u.as_str()))
                        .and_then(slots::extract_quantity)
                });
            if !matches!(
                kind,
                FieldKind::Phone | FieldKind::Serial | FieldKind::Address
            ) && !dated_time
                && !named
                && counted.is_none()
            {
                continue;
            }
            if st.kind != StepKind::Info || self.fields.contains_key(&st.title) {
                continue;
            }
            if let Some(v) = counted.or_else(|| slots::extract(kind, text, now)) {
                self.prefill.entry(j).or_insert(v);
            }
        }
    }

    /// The conditional line of step `i` that fits the caller's reply: a "cannot"
    /// branch (找不到/不知道) or a "change" branch (改时间/地址有变/换号码).
    fn branch_line(&self, i: usize, text: &str) -> Option<(String, Option<FieldKind>)> {
        let st = &self.script.steps[i];
        let cannot = CANNOT_WORDS.iter().any(|w| text.contains(w));
        let change = says_change(text);
        if !cannot && !change {
            return None;
        }
        let candidates: Vec<&Conditional> = st
            .conditionals
            .iter()
            .filter(|c| {
                // "若对方不方便" is about the call, and handled as such; "如果客户周末
                // 没空" is about the proposed time, and is this step's branch.
                let about_time = ["时间", "周末", "那天", "日子", "上午", "下午", "工作日"]
                    .iter()
                    .any(|k| c.condition.contains(k));
                about_time
                    || !["方便", "忙", "没空"]
                        .iter()
                        .any(|k| c.condition.contains(k))
            })
            .collect();
        // The branch whose condition the caller says ("就是旧的不要了" for 若客户说
        // 没买新的、只是处理旧的) before one that only shares a cannot-word.
        candidates
            .iter()
            .find(|c| says_condition(&c.condition, text))
            .or_else(|| {
                candidates.iter().find(|c| {
                    let cond = &c.condition;
                    let cond_cannot = CANNOT_WORDS.iter().any(|w| cond.contains(w));
                    let cond_change = [
                        "改",
                        "换",
                        "变",
                        "不对",
                        "有误",
                        "错",
                        "不行",
                        "调整",
                        "没空",
                        "不方便",
                    ]
                    .iter()
                    .any(|w| cond.contains(w));
                    // Or the caller says what the condition says ("来不了" / "如果对方来不了").
                    let same_words = CHANGE_WORDS
                        .iter()
                        .chain(CANNOT_WORDS)
                        .any(|w| text.contains(w) && cond.contains(w));
                    (cannot && cond_cannot) || (change && cond_change) || same_words
                })
            })
            .map(|c| {
                // What the branch's line asks for ("…说一下详细地址"), before what its
                // condition names as missing ("若用户找不到户号").
                let own = super::script::field_kind("", &c.line)
                    .or_else(|| super::script::field_kind(&c.condition, &c.line));
                let kind = if own.is_none() && is_yes_no(&c.line) {
                    None
                } else {
                    own.or(st.field)
                };
                (c.line.clone(), kind)
            })
    }

    fn finish(&mut self, outcome: Outcome, actions: &mut Vec<Action>) {
        self.outcome = Some(outcome);
        self.state = State::Ended;
        self.late_turn_open = outcome == Outcome::Completed;
        self.path.push("closing".into());
        actions.push(Action::HangUp { outcome });
    }

    fn result(
        &mut self,
        intent: Intent,
        actions: Vec<Action>,
        kb: Option<(usize, f32)>,
    ) -> TurnResult {
        let says: Vec<Action> = actions
            .iter()
            .filter(|a| matches!(a, Action::Say { .. }))
            .cloned()
            .collect();
        if !says.is_empty() {
            self.last_lines = says;
        }
        TurnResult {
            intent,
            actions,
            step: self.current_step(),
            kb,
        }
    }

    /// The first turn: the opening line.
    pub fn opening(&mut self, _now: DateTime<FixedOffset>) -> TurnResult {
        let mut actions = Vec::new();
        if self.state != State::NotStarted {
            return self.result(Intent::Silence, actions, None);
        }
        self.path.push("opening".into());
        let first_interruptible = self.script.steps[0].interruptible;
        actions.push(Action::Say {
            text: self.script.opening.clone(),
            step: Some("opening".into()),
            interruptible: first_interruptible || !self.skip_first_step,
            fixed: true,
        });
        if self.opening_kind == StepKind::Statement {
            if self.skip_first_step {
                self.enter_step(1, &mut actions);
            } else {
                self.enter_step(0, &mut actions);
            }
        } else {
            self.state = State::Opening;
        }
        self.result(Intent::Silence, actions, None)
    }

    /// Says step `i` (or the closing when past the end).
    fn enter_step(&mut self, i: usize, actions: &mut Vec<Action>) {
        if i >= self.script.steps.len() {
            self.close(actions);
            return;
        }
        self.branch_kind = None;
        self.after_new_value = None;
        self.branch_offer = false;
        self.value_retries = 0;
        if let Some(from) = self.branch_only.get(&i) {
            if !self.branches_taken.contains(from) {
                self.path
                    .push(format!("{}:skipped", self.script.steps[i].id()));
                self.enter_step(i + 1, actions);
                return;
            }
        }
        if self.skipped_by_direction(i) {
            self.path
                .push(format!("{}:skipped", self.script.steps[i].id()));
            self.enter_step(i + 1, actions);
            return;
        }
        if self.denied_ahead.remove(&i) {
            let title = self.script.steps[i].title.clone();
            self.record(&format!("confirm:{title}"), "否", actions);
            self.path
                .push(format!("{}:skipped", self.script.steps[i].id()));
            self.enter_step(i + 1, actions);
            return;
        }
        if self.affirmed_ahead.remove(&i) {
            let title = self.script.steps[i].title.clone();
            self.record(&format!("confirm:{title}"), "是", actions);
            if self.script.steps[i].field == Some(FieldKind::Time) {
                if let [t] = proposed_times(&self.script.steps[i].text(), self.started).as_slice() {
                    let t = t.clone();
                    self.set_field(&title, &t, FieldKind::Time, actions);
                }
            }
            self.path.push(self.script.steps[i].id());
            self.enter_step(i + 1, actions);
            return;
        }
        if let Some(v) = self.prefill.remove(&i) {
            // Already answered earlier in the call: record and skip the question.
            let kind = self.script.steps[i].field.unwrap_or(FieldKind::Text);
            let key = self.script.steps[i].title.clone();
            self.set_field(&key, &v, kind, actions);
            self.path.push(self.script.steps[i].id());
            self.enter_step(i + 1, actions);
            return;
        }
        self.state = State::Step(i);
        self.path.push(self.script.steps[i].id());
        self.repeats = 0;
        for l in self.script.steps[i].lines.clone() {
            match self.fill_time_blank(&l) {
                Some(filled) => actions.push(self.say(&filled, Some(i), false)),
                None => actions.push(self.say(&l, Some(i), true)),
            }
        }
        // A final statement (thanks / promises) flows straight into the closing.
        if i + 1 == self.script.steps.len() && self.script.steps[i].kind == StepKind::Statement {
            self.close(actions);
        }
    }

    /// A read-back line with a blank date and time ("给您确认一下：X 月 X 号 X 点，
    /// 周工到…"): the blank is the time this call settled on, the latest time
    /// recorded, else the time a step proposed. Without either the blank and its
    /// comma are left out: a blank is never read out. `None` when the line has none.
    fn fill_time_blank(&self, line: &str) -> Option<String> {
        let m = super::text::time_blank_re().find(line)?;
        let recorded = self
            .typed
            .iter()
            .rev()
            .filter(|(_, kind)| *kind == FieldKind::Time)
            .find_map(|(k, _)| self.fields.get(k))
            .cloned()
            .or_else(|| {
                self.script
                    .steps
                    .iter()
                    .find_map(|st| proposed_times(&st.text(), self.started).into_iter().next())
            });
        let spoken = recorded
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| speak_time(t, self.started));
        let rest = &line[m.end()..];
        Some(match spoken {
            Some(t) => format!("{}{t}{rest}", &line[..m.start()]),
            None => format!(
                "{}{}",
                &line[..m.start()],
                rest.trim_start_matches(['，', ',', '、'])
            ),
        })
    }

    /// A branch line of the script for danger `d` that the caller's words meet.
    fn script_danger_line(&self, d: super::intent::Danger, text: &str) -> Option<String> {
        let topic: &[&str] = match d {
            super::intent::Danger::Gas => &["燃气", "煤气", "天然气", "漏气"],
            super::intent::Danger::Fire => &["着火", "起火", "失火", "火灾"],
            super::intent::Danger::Medical => &["晕倒", "昏迷", "急救", "胸口", "呼吸"],
            super::intent::Danger::Crime => &["报警", "撬", "抢劫"],
        };
        self.script
            .steps
            .iter()
            .flat_map(|st| &st.conditionals)
            .find(|b| {
                topic.iter().any(|w| b.condition.contains(w)) && says_condition(&b.condition, text)
            })
            .map(|b| b.line.clone())
    }

    /// The line of step `i`'s branch whose condition sets a limit the value goes
    /// past: a day (今天/当天, 周日, 周末), a part of the day (晚上, 六点以后) or a
    /// count (超过4个). Other words of the condition ("科目三要约晚上或者周日") must
    /// be among the recorded values or the caller's words.
    fn value_past_limit(
        &self,
        i: usize,
        kind: FieldKind,
        value: &str,
        text: &str,
        now: DateTime<FixedOffset>,
    ) -> Option<String> {
        let known: String = self
            .fields
            .values()
            .map(String::as_str)
            .chain(std::iter::once(text))
            .collect::<Vec<_>>()
            .join("；");
        self.script.steps[i]
            .conditionals
            .iter()
            .find(|b| {
                let cond = b.condition.as_str();
                let past = match kind {
                    FieldKind::Time => time_past_limit(cond, value, now),
                    FieldKind::Number => count_past_limit(cond, value),
                    _ => None,
                };
                let Some(rest) = past else { return false };
                // What is left of the condition names something else it needs.
                let rest: String = rest
                    .chars()
                    .filter(|c| super::text::is_han(*c) || c.is_ascii_alphanumeric())
                    .collect();
                rest.chars().count() < 2 || known.contains(rest.as_str())
            })
            .map(|b| b.line.clone())
    }

    /// The script's line for someone other than the callee answering ("接电话的不是
    /// 本人：…麻烦您转告…"), from the first steps' branches.
    fn not_the_person_line(&self) -> Option<String> {
        const NOT_THE_PERSON: &[&str] = &[
            "不是本人",
            "非本人",
            "不是客户本人",
            "接电话的不是",
            "其他人接",
            "别人接",
        ];
        self.script
            .steps
            .iter()
            .take(2)
            .flat_map(|st| &st.conditionals)
            .find(|b| NOT_THE_PERSON.iter().any(|k| b.condition.contains(k)))
            .map(|b| b.line.clone())
    }

    /// The words for someone who is not the callee. One who knows the callee ("我是
    /// 她同事") hears the script's own line for it ("麻烦您转告…"); a wrong number
    /// hears the built-in apology.
    fn say_wrong_person(&mut self, text: &str, actions: &mut Vec<Action>) {
        let knows = ["她", "他", "同事", "朋友", "室友", "邻居", "家里"]
            .iter()
            .any(|k| text.contains(k));
        match self.not_the_person_line().filter(|_| knows) {
            Some(l) => {
                actions.push(self.say(&l, None, true));
                if !l.contains("再见") {
                    actions.push(self.builtin(BYE_SHORT));
                }
            }
            None => actions.push(self.builtin(WRONG_PERSON)),
        }
    }

    /// A step the script says not to ask in what has happened: "客户报了型号的这一步
    /// 不用再问" once a model number is recorded, "如果客户是装新机的：这一步跳过"
    /// once the caller has said so.
    fn skipped_by_direction(&self, i: usize) -> bool {
        const SKIP: &[&str] = &[
            "跳过",
            "不用再问",
            "不用问",
            "不再问",
            "不必问",
            "无需询问",
            "不用再确认",
        ];
        let step = &self.script.steps[i];
        step.directions.iter().any(|d| {
            let Some(at) = SKIP.iter().filter_map(|w| d.find(w)).min() else {
                return false;
            };
            let before = &d[..at];
            // "…客户报了型号的这一步不用再问": a value the caller has given.
            if let Some(c) = given_value_re().captures(before) {
                let what = &c[1];
                return self.script.steps.iter().enumerate().any(|(j, st)| {
                    j != i
                        && self.fields.contains_key(&st.title)
                        && (st.title.contains(what)
                            || st.collects.iter().any(|r| r.contains(what))
                            || (st.field == Some(FieldKind::Phone)
                                && ["号码", "电话", "手机"].iter().any(|w| what.contains(w))))
                });
            }
            // "提示：读者已经约好一周内归还的，续借不用再问": a time agreed within a span.
            if let Some(span) = within_span(before) {
                return self.script.steps.iter().take(i).any(|st| {
                    st.field == Some(FieldKind::Time)
                        && self
                            .fields
                            .get(&st.title)
                            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                            .is_some_and(|t| t <= self.started + span)
                });
            }
            // "如果客户是装新机的：这一步跳过": the condition said in the caller's words.
            let Some((cond, _)) = before.split_once(['：', ':']) else {
                return false;
            };
            let cond = cond.trim_start_matches(['（', '(']);
            let heard: Vec<&String> = self
                .script
                .steps
                .iter()
                .take(i)
                .filter(|st| st.field == Some(FieldKind::Text))
                .filter_map(|st| self.fields.get(&st.title))
                .chain(self.fields.get("remarks"))
                .collect();
            heard.iter().any(|t| says_condition(cond, t))
        })
    }

    fn close(&mut self, actions: &mut Vec<Action>) {
        let mut lines: Vec<String> = self.script.closing.clone();
        if !self.docs_requested && lines.len() >= 2 {
            let keep: Vec<String> = lines
                .iter()
                .filter(|l| {
                    !["文档", "资料", "材料", "发送"]
                        .iter()
                        .any(|k| l.contains(k))
                })
                .cloned()
                .collect();
            if !keep.is_empty() {
                lines = keep;
            }
        }
        let lines = completed_closing(lines);
        for l in lines {
            actions.push(Action::Say {
                text: l,
                step: Some("closing".into()),
                interruptible: true,
                fixed: true,
            });
        }
        self.finish(Outcome::Completed, actions);
    }

    fn advance(&mut self, actions: &mut Vec<Action>) {
        match self.state {
            State::Opening => {
                let next = usize::from(self.skip_first_step);
                self.enter_step(next, actions);
            }
            State::Step(i) => self.enter_step(i + 1, actions),
            _ => {
                let at = self.resume_at;
                self.enter_step(at, actions);
            }
        }
    }

    fn current_kind(&self) -> StepKind {
        match self.state {
            State::Opening => self.opening_kind,
            State::Step(i) => self.script.steps[i].kind,
            _ => StepKind::Statement,
        }
    }

    fn current_text(&self) -> String {
        match self.state {
            State::Opening => self.script.opening.clone(),
            State::Step(i) => self.script.steps[i].text(),
            _ => String::new(),
        }
    }

    fn step_index(&self) -> Option<usize> {
        match self.state {
            State::Step(i) => Some(i),
            _ => None,
        }
    }

    /// After a detour (answer, note), go back to where we were: ask the step's
    /// question again, or move on after a statement.
    fn resume(&mut self, actions: &mut Vec<Action>) {
        match self.current_kind() {
            StepKind::Statement => {
                actions.push(self.builtin(CONTINUE));
                self.advance(actions);
            }
            // "是收旧家电的吧？" before saying anything else: the opening's question
            // is still to be answered.
            StepKind::AnyQuestions
                if self.state == State::Opening && self.answered == 0 && !self.need_noted =>
            {
                let q = short_question(&self.script.opening);
                actions.push(self.say(&q, None, true));
            }
            StepKind::AnyQuestions => actions.push(self.builtin(ANY_MORE)),
            _ => {
                let q = short_question(&self.current_text());
                let idx = self.step_index();
                actions.push(self.say(&q, idx, true));
            }
        }
    }

    /// The callee said something.
    pub fn on_utterance(
        &mut self,
        text: &str,
        confidence: f32,
        now: DateTime<FixedOffset>,
    ) -> TurnResult {
        if self.listens_after_goodbye() {
            return self.on_late_turn(text, now);
        }
        if matches!(
            self.state,
            State::Ended | State::NotStarted | State::Transferring
        ) {
            return self.result(Intent::Silence, Vec::new(), None);
        }
        let mut text = super::text::strip_openers(text);
        // A caller who rang us says who they are before what they want.
        if self.state == State::Opening && self.caller_rang_us() {
            text = super::text::strip_self_introduction(text);
        }
        let c = classify(text, now);
        if c.intent == Intent::Silence {
            return self.on_silence(now);
        }
        self.silences = 0;
        self.reprompts = 0;
        self.held = false;
        self.heard_anything = true;
        let mut actions = Vec::new();
        let mut kb_hit = None;

        // A value given earlier is corrected ("不对，是602，不是502", "刚才说错了…").
        let before = self.state.clone();
        if matches!(self.state, State::Opening | State::Step(_))
            && slots::is_correction(&c.text)
            && self.apply_correction(&c.text, &mut actions)
        {
            self.repeats = 0;
            if self.state == before {
                self.resume(&mut actions);
            }
            self.failures = 0;
            return self.result(Intent::Statement, actions, None);
        }
        // "网速慢……不对，不是慢，是完全断了": where the caller is saying what they
        // called about, what counts is what comes after the last correction cue. A
        // corrected value ("账号是…，不对，是…") is a statement, never a "no".
        let mut c = self.after_correction(c, now);
        // "推销电话以后别给我打了。我打过来是因为宽带断了": a caller who rang us asks
        // for no more calls and, in the same breath, tells what they rang about. The
        // request is granted and the call goes on with the rest.
        if c.intent == Intent::Hostile && self.caller_rang_us() {
            if let Some(rest) = beyond_no_more_calls(&c.text) {
                self.record("do_not_call", "true", &mut actions);
                actions.push(self.builtin(NO_MORE_CALLS_NOTED));
                c = classify(&rest, now);
            }
        }
        // A danger to life comes before the script: say whom to call, note it, and
        // stay where the call was.
        if let Some(d) = super::intent::danger(&c.text) {
            self.record("urgent", &c.text, &mut actions);
            // The script's own line for this danger ("如果客户说闻到燃气味：请您马上关掉
            // 总阀门…") says what this business wants said; the built-in one otherwise.
            match self.script_danger_line(d, &c.text) {
                Some(line) => actions.push(self.say(&line, None, true)),
                None => actions.push(self.builtin(danger_line(d))),
            }
            self.failures = 0;
            return self.result(Intent::Statement, actions, None);
        }
        // Universal intents first.
        match c.intent {
            Intent::Transfer => {
                if c.upset {
                    actions.push(self.builtin(EMPATHY));
                }
                self.hand_to_person(TransferReason::CallerAsked, &c.text, now, &mut actions);
                return self.result(c.intent, actions, None);
            }
            Intent::Abusive => {
                actions.push(self.builtin(ABUSIVE));
                self.record("reason", &c.text, &mut actions);
                self.finish(Outcome::Declined, &mut actions);
                return self.result(c.intent, actions, None);
            }
            Intent::Hostile => {
                actions.push(self.builtin(HOSTILE));
                self.record("do_not_call", "true", &mut actions);
                self.record("reason", &c.text, &mut actions);
                self.finish(Outcome::DoNotCall, &mut actions);
                return self.result(c.intent, actions, None);
            }
            Intent::WrongPerson if super::intent::family_proxy(&c.text).is_none() => {
                self.say_wrong_person(&c.text, &mut actions);
                self.record("reason", "wrong_person", &mut actions);
                self.finish(Outcome::Declined, &mut actions);
                return self.result(c.intent, actions, None);
            }
            Intent::Repeat => {
                self.repeats += 1;
                let lines: Vec<Action> = self
                    .last_lines
                    .iter()
                    .filter(|a| !matches!(a, Action::Say { text, .. } if text == EMPATHY))
                    .cloned()
                    .collect();
                // "说了多少遍了听不清！": the apology comes before the repeat.
                if c.upset {
                    actions.push(self.builtin(EMPATHY));
                }
                if self.repeats >= 2 {
                    actions.push(self.builtin(REPHRASE_PREFIX));
                    let text = match self.state {
                        State::Opening | State::Step(_) => rephrase(&self.current_text()),
                        _ => lines
                            .iter()
                            .filter_map(|a| match a {
                                Action::Say { text, .. } => Some(text.clone()),
                                _ => None,
                            })
                            .collect::<Vec<_>>()
                            .join(""),
                    };
                    let idx = self.step_index();
                    actions.push(self.say(&text, idx, true));
                } else {
                    actions.push(self.builtin(REPEAT_PREFIX));
                    actions.extend(lines.into_iter().filter(|a| !matches!(a, Action::Say { text, .. } if text == REPEAT_PREFIX || text == REPHRASE_PREFIX)));
                }
                let r = self.repeats;
                let res = self.result(c.intent, actions, None);
                self.repeats = r;
                return res;
            }
            _ => {}
        }
        self.repeats = 0;
        if c.upset && c.intent != Intent::Transfer {
            actions.push(self.builtin(EMPATHY));
        }

        let state = self.state.clone();
        match state {
            State::AwaitCallbackTime { tries } => {
                self.on_callback_reply(&c, tries, now, &mut actions)
            }
            State::AwaitEmail { tries } => self.on_email_reply(&c, tries, &mut actions),
            State::ConfirmEmail { email } => self.on_email_confirm(&c, &email, &mut actions),
            State::OfferTransfer => self.on_transfer_offer_reply(&c, now, &mut actions),
            State::Opening | State::Step(_) => {
                kb_hit = self.on_step_reply(&c, confidence, now, &mut actions);
            }
            State::NotStarted | State::Transferring | State::Ended => {}
        }
        self.keep_stray_phone(&c, now, &mut actions);
        self.count_failures(&c, &mut actions);
        self.result(c.intent, actions, kb_hit)
    }

    /// Writes down the phone number or serial the caller gave where no step asked
    /// for it, and keeps it for the step that will ask.
    fn note_values(&mut self, text: &str, now: DateTime<FixedOffset>, actions: &mut Vec<Action>) {
        if let Some(v) = slots::extract(FieldKind::Serial, text, now) {
            if !self.fields.values().any(|f| f.contains(v.as_str())) {
                let key = if text.contains("账号") {
                    "账号"
                } else {
                    "编号"
                };
                self.set_field(key, &v, FieldKind::Serial, actions);
            }
        }
        if let Some(v) = slots::extract(FieldKind::Phone, text, now).filter(|p| p.len() >= 11) {
            if !self.fields.values().any(|f| f.contains(v.as_str())) {
                self.set_field("联系电话", &v, FieldKind::Phone, actions);
            }
        }
        self.prefill_from(text, 0, now);
    }

    /// "我是锦华小区的，十二号楼三单元四零二，家里暖气…": an address said with the need
    /// where no step asks for one is written down all the same.
    fn note_address(&mut self, text: &str, actions: &mut Vec<Action>) {
        if self
            .script
            .steps
            .iter()
            .any(|st| st.field == Some(FieldKind::Address))
        {
            return;
        }
        let has_place = ["号楼", "单元", "栋", "幢", "室", "小区", "路", "街"]
            .iter()
            .filter(|w| text.contains(*w))
            .count()
            >= 2;
        if !has_place {
            return;
        }
        if let Some(a) = slots::extract_address(text) {
            if !self.fields.values().any(|v| v.contains(a.as_str())) {
                self.set_field("地址", &a, FieldKind::Address, actions);
            }
        }
    }

    /// The utterance as it stands after a self-correction (see `on_utterance`).
    fn after_correction(&self, c: Classified, now: DateTime<FixedOffset>) -> Classified {
        if matches!(
            c.intent,
            Intent::Transfer | Intent::Abusive | Intent::Hostile
        ) || !slots::is_correction(&c.text)
        {
            return c;
        }
        // "9幢2单元701，不是701，是710": a value said, then patched in the same
        // breath. What stands is what was said first, with the old part replaced.
        if let Some(corr) = slots::correction(&c.text).filter(|k| !k.tail) {
            if let Some(old) = corr.old.as_deref().filter(|o| *o != corr.new) {
                let cut = ["不是", "不对", "说错", "错了"]
                    .iter()
                    .filter_map(|w| c.text.find(w))
                    .min();
                if let Some(before) = cut.map(|i| &c.text[..i]).filter(|b| b.contains(old)) {
                    let mut c = c.clone();
                    c.text = before
                        .trim_end_matches(|ch: char| !ch.is_alphanumeric())
                        .replacen(old, &corr.new, 1);
                    if matches!(c.intent, Intent::Negative | Intent::Agree) {
                        c.intent = Intent::Statement;
                    }
                    return c;
                }
            }
        }
        let has_value =
            slots::extract_phone(&c.text).is_some() || slots::extract_serial(&c.text).is_some();
        if has_value {
            let mut c = c;
            if matches!(c.intent, Intent::Negative | Intent::Agree) {
                c.intent = Intent::Statement;
            }
            // "账号是HZ20261234，不对，是HZ20261243" is noted as "账号是HZ20261243".
            if let (Some((before, _)), Some(corr)) = (
                slots::split_at_last_strong_correction(&c.text),
                slots::correction(&c.text),
            ) {
                let old = slots::extract_serial(before).or_else(|| slots::extract_phone(before));
                if let Some(old) = old.filter(|o| !corr.tail && before.contains(o.as_str())) {
                    let fixed = before
                        .trim_end_matches(|ch: char| !ch.is_alphanumeric())
                        .replacen(old.as_str(), &corr.new, 1);
                    c.text = fixed;
                }
            }
            return c;
        }
        let stating_need = self.current_kind() == StepKind::AnyQuestions
            || (self.state == State::Step(0) && self.answered == 0);
        // "一百五十二，九十……哦不对，我看岔了，是一百二十五，九十" where a reading is
        // asked and nothing was given before: the answer is what follows the cue.
        // (A typed value's own extraction reads past the cue already.)
        let answering = matches!(self.state, State::Step(i)
            if self.script.steps[i].kind == StepKind::Info
                && matches!(self.script.steps[i].field, None | Some(FieldKind::Text)));
        if !stating_need && answering {
            if let Some((before, after)) = slots::split_at_last_strong_correction(&c.text) {
                let said_before = before.chars().filter(|ch| ch.is_alphanumeric()).count() >= 2;
                let after = after.trim_start_matches(|ch: char| !ch.is_alphanumeric());
                if said_before && after.chars().filter(|ch| ch.is_alphanumeric()).count() >= 2 {
                    let mut k = classify(after, now);
                    if matches!(k.intent, Intent::Negative | Intent::Agree) {
                        k.intent = Intent::Statement;
                    }
                    return k;
                }
            }
            return c;
        }
        if !stating_need {
            return c;
        }
        match slots::split_at_last_strong_correction(&c.text) {
            Some((_, after)) => {
                let after = after.trim_start_matches(|ch: char| !ch.is_alphanumeric());
                // "不是慢，是完全断了": the denied clause goes too.
                let after = match after.strip_prefix("不是") {
                    Some(rest) => rest.split_once(['，', ',']).map_or(after, |(_, r)| r),
                    None => after,
                };
                let after =
                    after.trim_start_matches(|ch: char| !ch.is_alphanumeric() || ch == '是');
                if after.chars().filter(|ch| ch.is_alphanumeric()).count() >= 2 {
                    classify(after, now)
                } else {
                    c
                }
            }
            None => c,
        }
    }

    /// A phone number said where no step asked for one ("别打我老伴的，打我的…")
    /// is still recorded: a careful agent writes it down.
    fn keep_stray_phone(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        let Some(phone) = slots::extract(FieldKind::Phone, &c.text, now).filter(|p| p.len() >= 11)
        else {
            return;
        };
        // Already written down as a phone number (a free-text note holding it does not
        // count: the record needs it as a value).
        let noted = self.typed.iter().any(|(k, kind)| {
            *kind == FieldKind::Phone
                && self
                    .fields
                    .get(k)
                    .is_some_and(|v| v.contains(phone.as_str()))
        });
        if noted || self.fields.values().any(|v| v == &phone) {
            return;
        }
        if self.prefill.values().any(|v| v == &phone) {
            return;
        }
        self.set_field("联系电话", &phone, FieldKind::Phone, actions);
    }

    /// Counts turns the agent could not understand or answer; after
    /// `transfer_after_failures` of them in a row, offers a person instead of
    /// another "I can't answer that".
    fn count_failures(&mut self, c: &Classified, actions: &mut Vec<Action>) {
        let failed = actions.iter().any(
            |a| matches!(a, Action::Say { text, .. } if text == HOLDING || text == LOW_CONFIDENCE),
        );
        if !failed {
            self.failures = 0;
            return;
        }
        self.failures += 1;
        if self.transfer_enabled
            && self.transfer_after_failures > 0
            && self.failures >= self.transfer_after_failures
            && matches!(self.state, State::Opening | State::Step(_))
        {
            self.failures = 0;
            actions.retain(|a| !matches!(a, Action::Say { .. }));
            actions.push(self.builtin(OFFER_TRANSFER));
            self.record("transfer_offered", &c.text, actions);
            self.before_offer = Some(self.state.clone());
            self.state = State::OfferTransfer;
        }
    }

    fn on_transfer_offer_reply(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        match c.intent {
            Intent::Agree | Intent::Transfer => {
                self.before_offer = None;
                self.hand_to_person(TransferReason::NotUnderstood, &c.text, now, actions);
            }
            Intent::Goodbye | Intent::Decline => {
                actions.push(self.builtin(EARLY_BYE));
                self.finish(Outcome::Declined, actions);
            }
            _ => {
                // "不用" or anything else: back to where we were, asking again.
                self.state = self.before_offer.take().unwrap_or(State::Opening);
                self.resume(actions);
            }
        }
    }

    fn schedule(
        &mut self,
        at: DateTime<FixedOffset>,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        self.callback_at = Some(at);
        self.record("callback_at", &at.to_rfc3339(), actions);
        actions.push(Action::ScheduleCallback {
            at,
            by_person: false,
            reason: None,
        });
        let line = format!(
            "好的，那我{}再打给您。感谢您的接听，再见。",
            speak_time(at, now)
        );
        actions.push(Action::Say {
            text: line,
            step: Some("callback".into()),
            interruptible: true,
            fixed: false,
        });
        self.finish(Outcome::CallbackScheduled, actions);
    }

    /// "是我，不过后天上午不行，周六上午可以" at the identity question: a yes, and the
    /// slot the next step proposes moved to another time. Not a request to be
    /// called back: the new slot is booked and the call goes on past that step.
    fn slot_moved_ahead(&mut self, c: &Classified, actions: &mut Vec<Action>) -> bool {
        let Some(next) = self.next_step() else {
            return false;
        };
        if !matches!(
            self.current_kind(),
            StepKind::Convenience | StepKind::Confirm
        ) {
            return false;
        }
        let Some(st) = self.script.steps.get(next) else {
            return false;
        };
        if st.field != Some(FieldKind::Time) {
            return false;
        }
        let proposed = proposed_times(&st.text(), self.started);
        let norm = normalize(&c.text);
        const YES: &[&str] = &["是我", "我是", "是的", "对", "嗯", "是啊", "没错"];
        const CALL_LATER: &[&str] = &[
            "再打",
            "打给",
            "打过来",
            "打来",
            "回电",
            "联系我",
            "忙",
            "开会",
            "开车",
            "不方便",
            "没空",
            "回头",
            "再说",
            "晚点",
        ];
        if proposed.is_empty()
            || !YES.iter().any(|y| norm.starts_with(y))
            || CALL_LATER.iter().any(|w| norm.contains(w))
        {
            return false;
        }
        // The time named last is the one wanted ("后天不行，周六可以").
        let Some(new) = c
            .text
            .rsplit(['，', ',', '。', '；', ' '])
            .find_map(|cl| slots::extract(FieldKind::Time, cl, self.started))
            .filter(|v| !proposed.contains(v))
        else {
            return false;
        };
        actions.push(self.value_confirmed("为您改为", &new, st.id()));
        self.prefill.insert(next, new);
        self.advance(actions);
        true
    }

    fn offer_callback(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        if let Some(t) = c.callback.filter(|t| t.exact && t.at > now) {
            self.schedule(t.at, now, actions);
            return;
        }
        let offer = match self.state {
            State::Step(i) => self.script.steps[i]
                .conditional(&["方便", "忙", "没空", "时间"])
                .map(str::to_string),
            State::Opening => self.script.steps[0]
                .conditional(&["方便", "忙", "没空", "时间"])
                .map(str::to_string),
            _ => None,
        };
        if let State::Step(i) = self.state {
            self.resume_at = i;
        }
        match offer {
            Some(o) => actions.push(self.say(&o, self.step_index(), true)),
            None => actions.push(self.builtin(ASK_TIME)),
        }
        self.state = State::AwaitCallbackTime { tries: 0 };
    }

    fn on_callback_reply(
        &mut self,
        c: &Classified,
        tries: u32,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) {
        let t = c.callback.or_else(|| parse_callback_time(&c.text, now));
        let whenever = [
            "随便",
            "都行",
            "都可以",
            "看着办",
            "你定",
            "你们定",
            "无所谓",
            "什么时候都",
        ]
        .iter()
        .any(|k| c.text.contains(k));
        if t.is_none() && whenever {
            // "随便 / 都行": next working slot tomorrow morning.
            let at = parse_callback_time("明天上午十点", now)
                .map(|x| x.at)
                .unwrap_or(now + Duration::days(1));
            self.schedule(at, now, actions);
            return;
        }
        match (c.intent, t) {
            (Intent::Decline | Intent::Negative, None)
                if c.text.contains("不用") || c.intent == Intent::Decline =>
            {
                actions.push(self.builtin(DECLINE));
                self.finish(Outcome::Declined, actions);
            }
            (_, Some(t)) if t.at > now => self.schedule(t.at, now, actions),
            (Intent::Agree, _) | (Intent::Statement, _) | (Intent::Goodbye, _)
                if tries >= 1 || c.intent != Intent::Statement =>
            {
                // "随便 / 都行": next working slot tomorrow morning.
                let at = parse_callback_time("明天上午十点", now)
                    .map(|x| x.at)
                    .unwrap_or(now + Duration::days(1));
                self.schedule(at, now, actions);
            }
            _ => {
                actions.push(self.builtin(ASK_TIME));
                self.state = State::AwaitCallbackTime { tries: tries + 1 };
            }
        }
    }

    fn known_email(&self) -> Option<String> {
        self.fields
            .get("email")
            .cloned()
            .or_else(|| self.vars.get("email").cloned())
            .or_else(|| self.vars.get("邮箱").cloned())
    }

    fn start_email(&mut self, c: &Classified, actions: &mut Vec<Action>) {
        self.docs_requested = true;
        self.record("documents_requested", &c.text, actions);
        if let State::Step(i) = self.state {
            self.resume_at = i;
        }
        self.resume_state = Some(self.state.clone());
        if let Some(e) = c.email.clone() {
            self.confirm_email(e, actions);
        } else if c.text.contains("登记")
            || c.text.contains("老邮箱")
            || c.text.contains("原来的")
            || c.text.contains("之前的")
        {
            let e = self.known_email().unwrap_or_else(|| "登记邮箱".into());
            self.record("email", &e, actions);
            actions.push(self.builtin(EMAIL_REGISTERED));
            self.back_from_detour(actions);
        } else if let Some(e) = self.known_email() {
            self.confirm_email(e, actions);
        } else {
            actions.push(self.builtin(ASK_EMAIL));
            self.state = State::AwaitEmail { tries: 0 };
        }
    }

    fn confirm_email(&mut self, email: String, actions: &mut Vec<Action>) {
        actions.push(Action::Say {
            text: format!("我跟您核对一下，邮箱是 {email}，对吗？"),
            step: Some("email".into()),
            interruptible: true,
            fixed: false,
        });
        self.state = State::ConfirmEmail { email };
    }

    fn on_email_reply(&mut self, c: &Classified, tries: u32, actions: &mut Vec<Action>) {
        if let Some(e) = c.email.clone() {
            self.confirm_email(e, actions);
        } else if c.text.contains("登记")
            || c.text.contains("原来")
            || c.text.contains("之前")
            || tries >= 1
        {
            let e = self.known_email().unwrap_or_else(|| "登记邮箱".into());
            self.record("email", &e, actions);
            actions.push(self.builtin(EMAIL_REGISTERED));
            self.back_from_detour(actions);
        } else {
            actions.push(self.builtin(EMAIL_AGAIN));
            self.state = State::AwaitEmail { tries: tries + 1 };
        }
    }

    fn on_email_confirm(&mut self, c: &Classified, email: &str, actions: &mut Vec<Action>) {
        if let Some(e) = c.email.clone().filter(|e| e != email) {
            self.confirm_email(e, actions);
            return;
        }
        match c.intent {
            Intent::Negative => {
                actions.push(self.builtin(EMAIL_AGAIN));
                self.state = State::AwaitEmail { tries: 0 };
            }
            _ => {
                self.record("email", email, actions);
                actions.push(self.builtin(EMAIL_OK));
                self.back_from_detour(actions);
            }
        }
    }

    /// Returns from an e-mail detour to the step it interrupted.
    fn back_from_detour(&mut self, actions: &mut Vec<Action>) {
        self.state = self
            .resume_state
            .take()
            .unwrap_or(State::Step(self.resume_at));
        self.resume(actions);
    }

    fn answer_question(
        &mut self,
        c: &Classified,
        actions: &mut Vec<Action>,
    ) -> Option<(usize, f32)> {
        if c.intent == Intent::AskIdentity {
            actions.push(self.builtin(IDENTITY));
            return None;
        }
        // "是那个收旧家电的吧？": the caller checks they reached the right place.
        if checks_who_we_are(&c.text, &self.script.opening) {
            actions.push(self.builtin(YES_THAT_IS_US));
            return None;
        }
        if let Some(clause) = self.value_said_before(&c.text) {
            actions.push(self.say(&format!("{clause}。"), None, true));
            self.answered += 1;
            return None;
        }
        match self
            .kb
            .answer(&c.text)
            .map(|(h, e)| (h, e.answer.clone(), e.question.clone()))
        {
            Some((hit, a, q)) => {
                actions.push(self.say(&a, None, true));
                self.answered += 1;
                self.record("questions_answered", &q, actions);
                Some((hit.index, hit.confidence))
            }
            None => {
                let last = self.step_index().unwrap_or(self.script.steps.len() - 1);
                let said = std::iter::once(self.script.opening.as_str()).chain(
                    self.script.steps[..=last.min(self.script.steps.len() - 1)]
                        .iter()
                        .flat_map(|s| s.lines.iter().map(String::as_str)),
                );
                if let Some(clause) = time_in_lines(&c.text, said) {
                    actions.push(self.say(&format!("{clause}。"), None, true));
                    self.answered += 1;
                    return None;
                }
                // "能不能顺便多看两套" where the step's branch covers it ("如果客户想顺便
                // 多看几套：…"): the script's line answers, not "I don't know".
                if let Some(i) = self.step_index() {
                    let line = self.script.steps[i]
                        .conditionals
                        .iter()
                        .find(|b| says_condition(&b.condition, &c.text))
                        .map(|b| b.line.clone());
                    if let Some(line) = line {
                        let key = format!("branch:{}", self.script.steps[i].title);
                        self.record(&key, &c.text, actions);
                        actions.push(self.say(&line, Some(i), true));
                        return None;
                    }
                }
                actions.push(self.builtin(HOLDING));
                self.record("open_questions", &c.text, actions);
                None
            }
        }
    }

    /// "周三上午吧，不过我这两天有点感冒，到时候还能打吗": a question asked after the
    /// value, in the same breath, is answered when the Q&A knows the answer.
    fn trailing_question(
        &mut self,
        text: &str,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<(usize, f32)> {
        let clauses: Vec<&str> = text
            .split(['，', ',', '。', '；'])
            .filter(|c| !c.trim().is_empty())
            .collect();
        let at =
            (1..clauses.len()).find(|&k| super::intent::classify(clauses[k], now).question_like)?;
        let question = clauses[at..].join("，");
        // A question clause after the value ("编号DY…。对了，还在保修期吗？"): the Q&A
        // answers it when it covers it, by characters or by meaning.
        self.kb.answer(&question)?;
        let asked = super::intent::classify(&question, now);
        self.answer_question(&asked, actions)
    }

    /// "我的取件码是多少来着": a value the agent itself has said in this call (the
    /// opening or a step's line, "您的取件码是6-2-3015"), said again: the clause of
    /// those lines that names what is asked and holds a digit.
    fn value_said_before(&self, question: &str) -> Option<String> {
        let cut = ["是多少", "多少来着", "是什么来着", "是几", "多少"]
            .iter()
            .filter_map(|w| question.find(w))
            .min()?;
        let label: String = question[..cut]
            .chars()
            .rev()
            .take_while(|c| super::text::is_han(*c) && !"的我你是".contains(*c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if label.chars().count() < 2 {
            return None;
        }
        let last = self.step_index().unwrap_or(0);
        std::iter::once(self.script.opening.as_str())
            .chain(
                self.script.steps[..=last.min(self.script.steps.len().saturating_sub(1))]
                    .iter()
                    .flat_map(|s| s.lines.iter().map(String::as_str)),
            )
            .flat_map(|l| l.split(['，', '。', '；', '？', '！', ',']))
            .find(|cl| cl.contains(label.as_str()) && cl.chars().any(|c| c.is_ascii_digit()))
            .map(|cl| cl.trim().to_string())
    }

    /// The branch of step `i` whose condition `text` says.
    fn said_branch(&self, i: usize, text: &str) -> Option<&Conditional> {
        self.script.steps[i].conditionals.iter().find(|b| {
            // "没空带过来、家里没车，或者猫狗不肯出门": the alternatives about the
            // call itself (方便, 忙, 打错) are the call's own handling; the others
            // are this branch's.
            let kept = condition_alternatives(&b.condition)
                .into_iter()
                .filter(|alt| {
                    !["方便", "忙", "没空", "打错", "不是本人"]
                        .iter()
                        .any(|k| alt.contains(k))
                })
                .collect::<Vec<_>>();
            !kept.is_empty() && says_condition(&kept.join("或者"), text)
        })
    }

    /// The caller says what one of the step's conditions says ("今年的已经打过了" at
    /// 若对方说今年已经打过了): the branch's line is said. A line that settles the
    /// matter ("好的，我给您登记已接种。") records the branch, keeps any value the caller
    /// gave with it, and moves on; a line that asks or offers waits for the answer.
    fn take_said_branch(
        &mut self,
        i: usize,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<Option<(usize, f32)>> {
        let st = self.script.steps[i].clone();
        let cond = self.said_branch(i, &c.text)?.clone();
        self.branches_taken.insert(i);
        let key = st.title.clone();
        // "…看看要不要调药。" tells what will happen; only a question waits for a reply.
        // "请您别着急，让里面的人按警铃…" asks nothing; "请您说一下新地址" does.
        let asks = cond.line.contains(['？', '?'])
            || [
                "请问",
                "说一下",
                "告诉我",
                "请您说",
                "请您报",
                "请您提供",
                "请您留",
            ]
            .iter()
            .any(|w| cond.line.contains(w));
        if asks {
            let own = super::script::field_kind("", &cond.line);
            // "寄到家吧，地址是…": what the branch would ask for is said already; a
            // careful agent takes it and does not ask again.
            let wanted = own
                .or(st.field)
                .filter(|_| !(own.is_none() && is_yes_no(&cond.line)));
            if let Some(k) = wanted.filter(|k| *k != FieldKind::Text) {
                let given = match k {
                    FieldKind::Time => slots::wanted_time(&c.text, now),
                    k => slots::extract(k, &c.text, now),
                };
                if let Some(v) = given {
                    if slots::is_correction(&c.text) {
                        // The value path below sorts out which value stands.
                        self.branches_taken.remove(&i);
                        return None;
                    }
                    self.set_field(&key, &v, k, actions);
                    self.prefill_from(&c.text, i + 1, now);
                    actions.push(self.builtin(OK_SHORT));
                    self.advance(actions);
                    return Some(None);
                }
            }
            self.branch_offer = own.is_none() && is_yes_no(&cond.line);
            self.branch_kind = if self.branch_offer {
                None
            } else {
                own.or(st.field)
            };
            actions.push(self.say(&cond.line, Some(i), true));
            return Some(None);
        }
        let value = match st.field {
            Some(FieldKind::Time) => slots::wanted_time(&c.text, now),
            Some(k) if k != FieldKind::Text => slots::extract(k, &c.text, now),
            _ => None,
        };
        match value {
            Some(v) => self.set_field(&key, &v, st.field.unwrap_or(FieldKind::Text), actions),
            // "两台空调和一台电视…" at a free-text step: the words are its value too.
            None if st.field == Some(FieldKind::Text) && !self.fields.contains_key(&key) => {
                self.record(&key, &c.text, actions);
                self.typed.push((key.clone(), FieldKind::Text));
            }
            None => self.record(&format!("branch:{key}"), &c.text, actions),
        }
        // Values for later steps said in the same breath ("订单号HX2026120417").
        self.prefill_from(&c.text, i + 1, now);
        actions.push(self.say(&cond.line, Some(i), true));
        // "好的，我帮您取消这次预约" / "我给您登记放弃": on an outbound call, the
        // business of the call is called off; the remaining steps are moot.
        // So is a line that says goodbye ("…祝您用车顺利。", "…打扰您了，再见。") or
        // promises no more calls about it ("不再为这辆车打续保电话了").
        let last_sentence = cond
            .line
            .trim_end_matches(['。', '！', '!', ' '])
            .rsplit(['。', '！', '!'])
            .next()
            .unwrap_or("");
        let farewell = last_sentence.ends_with("再见")
            || last_sentence.contains("祝您")
            || last_sentence.ends_with("打扰您了");
        let no_more_calls = cond.line.contains("不再")
            && ["打", "联系", "通知", "提醒", "来电"]
                .iter()
                .any(|w| cond.line.contains(w));
        let called_off = self.opening_kind != StepKind::AnyQuestions
            && (["取消", "放弃", "作废", "退订"]
                .iter()
                .any(|w| cond.line.contains(w))
                || farewell
                || no_more_calls)
            || cond.ends_call;
        if called_off {
            if !farewell {
                actions.push(self.builtin(EARLY_BYE));
            }
            self.finish(Outcome::Declined, actions);
            return Some(None);
        }
        match self.jump_after_branch(i) {
            // "然后直接记录地址和电话": the steps in between wait.
            Some(j) => {
                for skipped in i + 1..j {
                    let id = self.script.steps[skipped].id();
                    self.path.push(format!("{id}:skipped"));
                }
                self.enter_step(j, actions);
            }
            None => self.advance(actions),
        }
        Some(None)
    }

    /// Whether this is an inbound line: the opening asks what the caller wants
    /// ("请问有什么可以帮您？", "请问您这次要续配什么药？") or names a hotline.
    fn caller_rang_us(&self) -> bool {
        self.opening_kind == StepKind::AnyQuestions
            || self.script.opening.contains("热线")
            || self
                .script
                .steps
                .first()
                .is_some_and(|first| opening_names_subject(&self.script.opening, first))
    }

    /// Where a step's direction sends the call after its branch line: "然后直接记录
    /// 地址和电话" is the first later step about 地址 or 电话, "然后直接进入第5步" step 5.
    /// Only for a step with one branch, so the direction is that branch's.
    fn jump_after_branch(&self, i: usize) -> Option<usize> {
        let steps = &self.script.steps;
        if steps[i].conditionals.len() != 1 {
            return None;
        }
        let d = steps[i].directions.iter().find(|d| {
            ["然后", "随后", "之后", "接着"]
                .iter()
                .any(|w| d.starts_with(w))
                && ["直接", "跳到", "进入", "转到"]
                    .iter()
                    .any(|w| d.contains(w))
        })?;
        let named = |j: usize| {
            let st = &steps[j];
            let number = st.number.to_string();
            let cn = [
                "", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
            ]
            .get(st.number)
            .copied()
            .unwrap_or("");
            let by_number = [format!("第{number}步"), format!("步骤{number}")]
                .into_iter()
                .chain((!cn.is_empty()).then(|| format!("第{cn}步")))
                .any(|w| d.contains(&w));
            by_number
                || content_bigrams(&st.title)
                    .iter()
                    .any(|b| d.contains(b.as_str()))
        };
        (i + 1..steps.len())
            .find(|&j| named(j))
            .filter(|&j| j > i + 1)
    }

    /// A reply at a step that collects (or confirms) a value. `None` lets the
    /// general intent handling run.
    fn on_value_reply(
        &mut self,
        i: usize,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<Option<(usize, f32)>> {
        let st = self.script.steps[i].clone();
        if matches!(st.kind, StepKind::Info | StepKind::Confirm)
            && self.branch_kind.is_none()
            && !self.branch_offer
            && !self.branches_taken.contains(&i)
            && c.intent != Intent::Question
        {
            if let Some(done) = self.take_said_branch(i, c, now, actions) {
                return Some(done);
            }
        }
        let kind = self.branch_kind.or(st.field)?;
        if !matches!(
            st.kind,
            StepKind::Info | StepKind::Confirm | StepKind::Statement
        ) {
            return None;
        }
        if matches!(
            c.intent,
            Intent::Hold | Intent::Goodbye | Intent::WrongPerson | Intent::DocsRequest
        ) {
            return None;
        }
        let key = st.title.clone();
        // "驿站晚上几点关门": a question about a time is no time given.
        let asks_a_time = ["几点", "什么时候", "哪天", "几号", "多久"]
            .iter()
            .any(|w| c.text.contains(w));
        let value = match kind {
            FieldKind::Time if asks_a_time => None,
            FieldKind::Time => slots::wanted_time(&c.text, now)
                .map(|v| on_proposed_day(&v, &c.text, &st.text(), now)),
            // "做一次保养得弄多久": a question is no count, nor a name.
            FieldKind::Number | FieldKind::Name if c.question_like => None,
            // "请问您的宽带账号或者登记的手机号是多少？": either answers.
            FieldKind::Phone => slots::extract(kind, &c.text, now).or_else(|| {
                let either = ["账号", "帐号", "户号", "编号", "卡号", "客户号"]
                    .iter()
                    .any(|w| st.text().contains(w));
                either
                    .then(|| slots::extract(FieldKind::Serial, &c.text, now))
                    .flatten()
                    .filter(|v| v.chars().any(|ch| ch.is_ascii_alphabetic()) || v.len() >= 6)
            }),
            // "HX开头，后面是十位数字": a mobile number is no such serial.
            FieldKind::Serial if names_letter_prefix(&st.text()) => {
                slots::extract(kind, &c.text, now)
                    .filter(|v| {
                        v.chars().any(|ch| ch.is_ascii_alphabetic())
                            || slots::extract_phone(v).as_deref() != Some(v.as_str())
                    })
                    .map(|v| with_letter_prefix(&st.text(), v))
            }
            _ => slots::extract(kind, &c.text, now),
        };
        // "可以，就打这个" to "…就打现在这个号码可以吗？": the number the call is on.
        let value = value.or_else(|| {
            let offers_this_number = ["这个号码", "这个号", "这个电话", "本机", "来电号码"]
                .iter()
                .any(|w| st.text().contains(w));
            let takes_it = c.intent == Intent::Agree
                || ["打这个", "这个就行", "这个号", "就这个", "就打这"]
                    .iter()
                    .any(|w| c.text.contains(w));
            (kind == FieldKind::Phone && offers_this_number && takes_it && !says_change(&c.text))
                .then(|| CALLED_NUMBER.to_string())
        });
        let change = says_change(&c.text);
        // "周三可以" / "周三我要加班，能不能换一天" to "您约的是12月9日周三上午八点…":
        // the proposed day named without a clock is that slot, kept or turned down,
        // never a new time on the same day.
        let value = match value {
            Some(v) if kind == FieldKind::Time && st.kind == StepKind::Confirm => {
                let proposed = proposed_times(&st.text(), now);
                let same_day = proposed.iter().find(|p| p.get(..10) == v.get(..10));
                let clock = names_clock(&c.text);
                match same_day {
                    Some(_) if change && !clock => None,
                    Some(p) if !clock => Some(p.clone()),
                    _ => Some(v),
                }
            }
            v => v,
        };
        // "能不能换一天" asks for the change of day; it is no question for the Q&A.
        let asks_new_day = change
            && kind == FieldKind::Time
            && [
                "一天",
                "换天",
                "改天",
                "时间",
                "日子",
                "改期",
                "别的天",
                "哪天",
                // "周三我要去女儿家，能不能改一下": the time is what would change.
                "改一下",
                "改改",
                "换一下",
                "调一下",
                "往后推",
                "推迟",
                "挪一下",
            ]
            .iter()
            .any(|w| c.text.contains(w));
        let asks = c.intent == Intent::Question && value.is_none() && !asks_new_day;
        if st.kind == StepKind::Info {
            if kind == FieldKind::Text
                && (c.question_like
                    || is_short(&c.text)
                        && !matches!(c.intent, Intent::Statement | Intent::SpecialNeed))
            {
                return None;
            }
            // "今天下午三点" where the script says "如果客户要约今天：当天的车已经排满了…":
            // the value is past the script's limit; its line is said and the step
            // waits for another value.
            if let Some(line) = value
                .as_deref()
                .and_then(|v| self.value_past_limit(i, kind, v, &c.text, now))
            {
                self.record(&format!("branch:{key}"), &c.text, actions);
                actions.push(self.say(&line, Some(i), true));
                return Some(None);
            }
            if let Some(v) = value {
                self.set_field(&key, &v, kind, actions);
                self.prefill_from(&c.text, i + 1, now);
                // "周六下午两点，你们派人来取车吧": a yes to the next question too.
                self.note_affirmed_ahead(&c.text);
                actions.push(self.builtin(OK_SHORT));
                let hit = self.trailing_question(&c.text, now, actions);
                self.advance(actions);
                return Some(hit);
            }
            // "户号在哪能看到啊": the step's own line says where; say that part again.
            if c.question_like && asks_where(&c.text) {
                if let Some(clause) = where_in_line(&st.text()) {
                    actions.push(self.say(&format!("{clause}。"), Some(i), true));
                    let q = short_question(&st.text());
                    actions.push(self.say(&q, Some(i), true));
                    return Some(None);
                }
            }
            if let Some((line, k)) = self.branch_line(i, &c.text) {
                self.branches_taken.insert(i);
                // "没关系，先按普通回收下单，订单号找到以后再补上": a branch line that
                // asks nothing settles the step; the call goes on.
                if !asks_something(&line) {
                    self.settle_by_branch(i, &line, &c.text, now, actions);
                    return Some(None);
                }
                // A branch that offers something ("您需要送上门吗？") waits for a yes
                // or no; one that asks for another value collects that value.
                self.branch_offer = k.is_none() && is_yes_no(&line);
                self.branch_kind = k.filter(|_| !self.branch_offer);
                // "来不了，帮我送上门吧": the offer is already accepted.
                let accepted = self.branch_offer
                    && c.text
                        .split(['，', ',', '。', ' '])
                        .filter(|cl| !["不", "没", "别"].iter().any(|n| cl.contains(n)))
                        .any(|cl| {
                            content_bigrams(cl)
                                .iter()
                                .any(|b| line.contains(b.as_str()))
                        });
                if accepted {
                    self.branch_offer = false;
                    self.record(&format!("branch:{key}"), "是", actions);
                    self.prefill_from(&c.text, i + 1, now);
                    actions.push(self.builtin(OK_SHORT));
                    self.advance(actions);
                    return Some(None);
                }
                actions.push(self.say(&line, Some(i), true));
                return Some(None);
            }
            if asks {
                return None;
            }
            if kind != FieldKind::Text
                && matches!(
                    c.intent,
                    Intent::Statement | Intent::Agree | Intent::SpecialNeed
                )
                // "三层的" where a DY serial is asked: short, yet plainly no such
                // value; a short "好的" may be the caller going to look.
                && (!is_short(&c.text)
                    || c.intent == Intent::Statement
                        && matches!(
                            kind,
                            FieldKind::Phone | FieldKind::Serial | FieldKind::Number
                        ))
                && self.value_retries == 0
            {
                // Something else than the value asked for: ask once more, then take
                // what was said as it is.
                self.value_retries += 1;
                actions.push(self.builtin(NOTED));
                let q = short_question(&st.text());
                actions.push(self.say(&q, Some(i), true));
                return Some(None);
            }
            return None;
        }
        // A confirmation of a value (time, address, phone).
        // "你过一个小时再打" to "这个时间您可以吗？": the time is when to ring back,
        // not the booking's.
        let ring_back = ["再打", "打过来", "打给我", "回电", "再联系"]
            .iter()
            .any(|w| c.text.contains(w));
        if c.intent == Intent::NotConvenient
            && (value.is_none() || ring_back)
            && super::intent::classify(&c.text, now).callback.is_some()
        {
            return None;
        }
        // A value other than the one read out ("新号码是135…" to "尾号3308的手机可以吗？")
        // is a change even without a word saying so.
        let step_text = st.text();
        let differs = value.as_ref().is_some_and(|v| {
            let tail = super::text::last_chars(v, 4);
            matches!(
                kind,
                FieldKind::Phone | FieldKind::Serial | FieldKind::Address
            ) && c.intent != Intent::Question
                && !step_text.contains(v.as_str())
                && !step_text.contains(&tail)
        });
        // "周六上午十点可以的" to "我们这周六上午十点给您留了号，您看能来吗？": the
        // proposed time said back is a yes with its value; another time is a change.
        let proposed = if kind == FieldKind::Time {
            proposed_times(&step_text, now)
        } else {
            Vec::new()
        };
        let differs = differs
            || kind == FieldKind::Time
                && !proposed.is_empty()
                && c.intent != Intent::Question
                && value.as_ref().is_some_and(|v| !proposed.contains(v));
        if let Some(v) = value
            .as_ref()
            .filter(|v| proposed.contains(v) && !change && self.branch_kind.is_none() && !asks)
        {
            self.record(&format!("confirm:{key}"), "是", actions);
            self.set_field(&key, v, kind, actions);
            actions.push(self.builtin(OK_SHORT));
            let hit = self.trailing_question(&c.text, now, actions);
            self.advance(actions);
            return Some(hit);
        }
        // "明天不行，下周吧": a week is no time to book; ask for the day and hour.
        if kind == FieldKind::Time && change && self.branch_kind.is_none() && vague_time(&c.text) {
            match self.branch_line(i, &c.text) {
                Some((line, _)) => actions.push(self.say(&line, Some(i), true)),
                None => actions.push(self.builtin(ASK_NEW_VALUE)),
            }
            self.branch_kind = Some(FieldKind::Time);
            return Some(None);
        }
        // "您看哪天我再跟您确认一下？" on a step that books no time itself: the day
        // the caller names is when to ring again, a callback.
        if kind == FieldKind::Time && st.field != Some(FieldKind::Time) {
            let when = value
                .as_deref()
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok());
            let branch_asked_callback = self.branches_taken.contains(&i)
                && st
                    .conditionals
                    .iter()
                    .any(|b| asks_when_to_ring_again(&b.line));
            if let Some(at) = when.filter(|at| branch_asked_callback && *at > now) {
                self.schedule(at, now, actions);
                return Some(None);
            }
        }
        let has_value = value.is_some();
        if let Some(v) = value.filter(|_| change || differs || self.branch_kind.is_some()) {
            self.set_field(&key, &v, kind, actions);
            let said = if kind == FieldKind::Time {
                chrono::DateTime::parse_from_rfc3339(&v)
                    .map(|t| speak_time(t, now))
                    .unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            };
            match self.after_new_value.take() {
                // The branch's own words after the new value ("…后短信通知您").
                Some(line) => {
                    actions.push(Action::Say {
                        text: format!("好的，{said}，我记下了。"),
                        step: Some(st.id()),
                        interruptible: true,
                        fixed: false,
                    });
                    actions.push(self.say(&line, Some(i), true));
                }
                None => actions.push(Action::Say {
                    text: format!("好的，已经为您改为{said}。"),
                    step: Some(st.id()),
                    interruptible: true,
                    fixed: false,
                }),
            }
            self.advance(actions);
            return Some(None);
        }
        if change && !asks && c.intent != Intent::Agree {
            match self.branch_line(i, &c.text) {
                // "周四不在家，换个日子" to a proposed time whose branch only promises
                // ("我跟周工确认后短信通知您"): ask for the new time first, record it,
                // then say the promise.
                Some((line, _))
                    if kind == FieldKind::Time
                        && !proposed.is_empty()
                        && !asks_something(&line)
                        && !has_value =>
                {
                    self.branch_kind = Some(FieldKind::Time);
                    self.after_new_value = Some(line);
                    actions.push(self.builtin(ASK_NEW_TIME));
                }
                // A line that asks nothing settles the step.
                Some((line, _)) if !asks_something(&line) => {
                    self.settle_by_branch(i, &line, &c.text, now, actions);
                }
                Some((line, k)) => {
                    self.branch_kind = k.or(Some(kind));
                    actions.push(self.say(&line, Some(i), true));
                }
                None => {
                    self.branch_kind = Some(kind);
                    actions.push(self.builtin(ASK_NEW_VALUE));
                }
            }
            return Some(None);
        }
        None
    }

    /// The caller's first words on an inbound line ("净水器漏水了"): the need is
    /// recorded as the first step's answer and the flow goes on to the next step;
    /// a bare greeting is answered with the first step's question.
    fn on_need(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<Option<(usize, f32)>> {
        let first = self.script.steps.first()?.clone();
        let need_step = first.kind == StepKind::AnyQuestions
            || first.field == Some(FieldKind::Text)
            || first.kind == StepKind::Info;
        if !need_step {
            if let Some(r) = self.service_chosen(c, now, actions) {
                return Some(r);
            }
            return self.need_behind_triage(c, now, actions);
        }
        if !self.skip_first_step && first.kind != StepKind::AnyQuestions {
            return None;
        }
        let problem = tells_problem(&c.text);
        let kb_strong = self
            .kb
            .answer(&c.text)
            .is_some_and(|(h, _)| h.confidence >= 0.5);
        if problem {
            self.need_noted = true;
            if c.intent == Intent::Question {
                self.need_text.get_or_insert_with(|| c.text.clone());
            }
        }
        // "没有了" once a trouble asked about was answered ("家里断网了怎么办？"): that
        // question was the need; it is written down and the follow-up goes on.
        if self.answered > 0 && c.intent == Intent::Negative && !problem {
            if let Some(need) = self.need_text.clone() {
                if self.script.steps.len() > 1 && !self.fields.contains_key(&first.title) {
                    self.record(&first.title, &need, actions);
                    self.typed.push((first.title.clone(), FieldKind::Text));
                    actions.push(self.builtin(OK_SHORT));
                    self.enter_step(1, actions);
                    return Some(None);
                }
            }
        }
        // "没有别的了" after answers to questions only (no fault reported): nothing
        // to register, but a satisfaction survey the script runs at the end of every
        // call is still asked; without one the call closes.
        if self.answered > 0
            && !self.need_noted
            && matches!(c.intent, Intent::Negative | Intent::Goodbye)
        {
            let survey = (usize::from(self.skip_first_step)..self.script.steps.len())
                .find(|&i| self.script.steps[i].kind == StepKind::Feedback);
            match survey {
                Some(i) if c.intent == Intent::Negative => {
                    let from = usize::from(self.skip_first_step);
                    for skipped in from..i {
                        let id = self.script.steps[skipped].id();
                        self.path.push(format!("{id}:skipped"));
                    }
                    self.enter_step(i, actions);
                }
                _ => self.close(actions),
            }
            return Some(None);
        }
        let statement_like = matches!(
            c.intent,
            Intent::Statement | Intent::SpecialNeed | Intent::Agree | Intent::Negative
        );
        // A fault told as a question ("到底有没有人管！") with no Q&A answer is the need.
        let need_question =
            c.intent == Intent::Question && problem && self.kb.answer(&c.text).is_none();
        let _ = kb_strong;
        if !statement_like && !need_question {
            return None;
        }
        let norm = normalize(&c.text);
        let greeting = c.intent == Intent::Agree && is_short(&c.text)
            || ["喂", "你好", "您好", "在吗", "hello", "哈喽"]
                .iter()
                .any(|g| norm.starts_with(g))
                && norm.chars().count() <= 5
            || is_bare_request(&norm, &self.script.opening);
        if greeting {
            if self.answered == 0
                && first.text() != self.script.opening
                && self.state == State::Opening
            {
                self.enter_step(0, actions);
                return Some(None);
            }
            return None;
        }
        let has_value = slots::extract_phone(&c.text).is_some_and(|p| p.len() >= 7)
            || slots::extract_serial(&c.text).is_some();
        // "你记一下我的手机号，138…" as the first words: a value to note, not the
        // reason for the call, which is still to be asked.
        // More than the value ("户号是3301556677，我家水表一直在转，可是家里没用水"):
        // the rest is the need.
        let need_besides = without_value_clauses(&c.text)
            .split('，')
            .filter(|cl| {
                !["号", "手机", "电话", "记一下", "记下"]
                    .iter()
                    .any(|w| cl.contains(w))
            })
            .map(|cl| cl.chars().filter(|ch| super::text::is_han(*ch)).count())
            .sum::<usize>()
            >= 6;
        if has_value
            && !problem
            && !need_besides
            && c.intent != Intent::Question
            && self.state == State::Opening
            && self.answered == 0
        {
            self.note_values(&c.text, now, actions);
            actions.push(self.builtin(NOTED));
            let q = short_question(&self.script.opening);
            actions.push(self.say(&q, None, true));
            return Some(None);
        }
        // A question answered, then a bare number ("我手机号是138…"): the contact for
        // the follow-up, which the step after the need collects; the call goes on.
        if has_value
            && !problem
            && !need_besides
            && c.intent != Intent::Question
            && self.state == State::Opening
            && self.answered > 0
            && self.script.steps.len() > 1
        {
            self.note_values(&c.text, now, actions);
            if !self.prefill.contains_key(&1) {
                let v = match self.script.steps[1].field {
                    Some(FieldKind::Phone) => slots::extract_phone(&c.text)
                        .filter(|p| p.len() >= 7)
                        .or_else(|| slots::extract_serial(&c.text)),
                    Some(FieldKind::Serial) => slots::extract_serial(&c.text),
                    _ => None,
                };
                if let Some(v) = v {
                    self.prefill.insert(1, v);
                }
            }
            actions.push(self.builtin(OK_SHORT));
            self.enter_step(1, actions);
            return Some(None);
        }
        // A problem the Q&A solves outright is answered (and noted as the need); the
        // clauses that only carry a number do not take part in the match.
        let query = without_value_clauses(&c.text);
        // The opening asked for what the first step collects ("请问您家里有什么旧家电
        // 要回收？"): a statement is that value, whatever Q&A entry it resembles.
        let answers_opening = self.state == State::Opening
            && c.intent != Intent::Question
            && opening_names_subject(&self.script.opening, &first);
        if let Some((h, e)) = self.kb.answer(&query).filter(|_| !answers_opening) {
            // "停水了" is a fault to report, not the question "停水通知在哪里看？";
            // only a Q&A entry about what to do about it answers a fault.
            let troubleshoots = [
                "怎么办",
                "怎么回事",
                "为什么",
                "什么原因",
                "怎么处理",
                "怎么解决",
            ]
            .iter()
            .any(|w| e.question.contains(w));
            let reported_fault = problem && c.intent != Intent::Question && !troubleshoots;
            // A trouble the Q&A tells what to do about ("网速慢得要命" for "网速特别慢
            // 是什么原因？") is answered on the retriever's word; anything else only
            // on a strong character match.
            // A wish ("我要出国了，家里宽带想销户") asks for what the entry tells how to do.
            let wish = !problem
                && [
                    "我想", "想要", "我要", "打算", "希望", "帮我", "想把", "想给",
                ]
                .iter()
                .any(|w| c.text.contains(w));
            let sure = h.confidence >= 0.5
                || troubleshoots && (problem || c.intent == Intent::Question)
                || wish && h.confidence >= DENSE_ANSWER;
            if sure && !need_question && !reported_fault {
                self.record(&first.title, &c.text, actions);
                self.prefill_from(&c.text, 1, now);
                let asked = Classified {
                    text: query.clone(),
                    ..c.clone()
                };
                let hit = self.answer_question(&asked, actions);
                if problem && c.intent != Intent::Question && self.script.steps.len() > 1 {
                    // "暖气不热": the tip is given and the repair is still taken down.
                    self.typed.push((first.title.clone(), FieldKind::Text));
                    self.enter_step(1, actions);
                } else {
                    self.resume(actions);
                }
                return Some(hit);
            }
        }
        self.record(&first.title, &c.text, actions);
        self.typed.push((first.title.clone(), FieldKind::Text));
        self.prefill_from(&c.text, 1, now);
        self.note_address(&c.text, actions);
        // "暖气片往外滋水" with 若用户说暖气漏水或者喷水：“请您先把阀门关上…”: the
        // first step's branch is said, then the flow goes on.
        let branch = first
            .conditionals
            .iter()
            .find(|b| says_condition(&b.condition, &c.text) && !b.line.contains(['？', '?']))
            .map(|b| b.line.clone());
        match branch {
            Some(line) => {
                self.branches_taken.insert(0);
                actions.push(self.say(&line, Some(0), true));
            }
            None => actions.push(self.builtin(NOTED)),
        }
        self.enter_step(1, actions);
        Some(None)
    }

    /// "请问您是要预约练车，还是有别的事情要办？" answered "约练车" (or "科目二，想约后天
    /// 上午"): the caller picks the service the script runs, so its steps start, with
    /// whatever the words already answer filled in, instead of the Q&A answering them.
    fn service_chosen(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<Option<(usize, f32)>> {
        if self.opening_kind != StepKind::AnyQuestions || self.state != State::Opening {
            return None;
        }
        let offer = offered_service(&self.script.opening)?;
        let shares = |clause: &str| {
            offer
                .chars()
                .filter(|ch| !"要想是的个一有您我".contains(*ch) && clause.contains(*ch))
                .count()
                >= 2
        };
        // "练车预约是打这个吧？我要约车": a clause that asks for the service, though
        // another asks something.
        // The last clause asks for it ("我想约一下练车"); a question about it ("明天约的
        // 车还用不用去场地啊") is for the Q&A.
        let clauses: Vec<&str> = c
            .text
            .split_inclusive(['？', '?', '，', ',', '。'])
            .filter(|cl| !cl.trim().is_empty())
            .collect();
        let from = if c.intent == Intent::Question {
            clauses.len().saturating_sub(1)
        } else {
            0
        };
        let asks_for_it = clauses[from..].iter().any(|cl| {
            let chars: Vec<char> = cl.chars().collect();
            let a_not_a = chars
                .windows(3)
                .any(|w| w[0] == w[2] && (w[1] == '不' || w[1] == '没'));
            !cl.ends_with(['？', '?'])
                && !cl.contains('吗')
                && !a_not_a
                && (chars.len() <= 6
                    || ["要", "想", "约", "帮我", "给我"]
                        .iter()
                        .any(|w| cl.contains(w)))
                && shares(cl)
        });
        let first = self.script.steps.first()?;
        // One of the first step's own answers ("科目二"), even after a question or two.
        let option = either_options(&first.text())
            .into_iter()
            .find(|o| c.text.contains(o.as_str()))
            .filter(|_| c.intent != Intent::Question || asks_for_it);
        if option.is_none() && (!asks_for_it || self.answered > 0) {
            return None;
        }
        self.need_noted = true;
        if let Some(o) = option {
            self.prefill.insert(0, o);
        }
        self.prefill_from(&c.text, 1, now);
        self.enter_step(0, actions);
        Some(None)
    }

    /// "请问您家的电梯遇到什么问题了？" answered "门关不上了" where the first step is a
    /// yes/no triage ("有没有人被困？") and the next takes the trouble down: the words
    /// are that step's value, and the triage question comes first.
    fn need_behind_triage(
        &mut self,
        c: &Classified,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<Option<(usize, f32)>> {
        let steps = &self.script.steps;
        if self.opening_kind != StepKind::AnyQuestions
            || self.state != State::Opening
            || self.answered > 0
            || steps.first()?.kind != StepKind::Confirm
        {
            return None;
        }
        let k = (1..steps.len().min(3)).find(|&k| steps[k].field == Some(FieldKind::Text))?;
        let problem = tells_problem(&c.text);
        let told = match c.intent {
            Intent::Statement | Intent::SpecialNeed => !is_short(&c.text) || problem,
            // "有个马蜂窝，能来弄掉吗": a question no Q&A entry answers that is the
            // case of one of the first step's branches is told too.
            Intent::Question => {
                (problem || self.said_branch(0, &c.text).is_some())
                    && self.kb.answer(&c.text).is_none()
            }
            // "指纹按上去一点反应都没有": a 没有 inside a fault is no "no".
            Intent::Negative => problem && !is_short(&c.text),
            _ => false,
        };
        if !told {
            return None;
        }
        self.need_noted = true;
        self.prefill.insert(k, c.text.clone());
        // "我妈被关在电梯里了": the triage's branch is said; it comes first, and the
        // triage is answered by it.
        self.state = State::Step(0);
        if let Some(done) = self.take_said_branch(0, c, now, actions) {
            return Some(done);
        }
        self.state = State::Opening;
        // "门关不上，没人在里面": the triage answered too.
        self.note_denied_ahead(&c.text, 0);
        self.prefill_from(&c.text, k + 1, now);
        actions.push(self.builtin(NOTED));
        self.enter_step(0, actions);
        Some(None)
    }

    fn progress(&self) -> f32 {
        let done = self.step_index().map(|i| i + 1).unwrap_or(0);
        done as f32 / self.script.steps.len() as f32
    }

    fn on_step_reply(
        &mut self,
        c: &Classified,
        confidence: f32,
        now: DateTime<FixedOffset>,
        actions: &mut Vec<Action>,
    ) -> Option<(usize, f32)> {
        let kind = self.current_kind();
        let title = match self.state {
            State::Step(i) => self.script.steps[i].title.clone(),
            _ => "opening".into(),
        };
        let mut intent = c.intent;
        // "没事" to "现在方便吗？" / "耽误您两分钟可以吗？" is "no problem, go ahead".
        if intent == Intent::Negative
            && c.negative_word.as_deref() == Some("没事")
            && asks_permission(&self.current_text())
        {
            intent = Intent::Agree;
        }
        // "你发过来吧" after the agent said it will send ("报价单今天发给您"): go-ahead,
        // not a request for documents by e-mail.
        if intent == Intent::DocsRequest
            && c.email.is_none()
            && ["发给您", "发到您", "给您发", "发您", "短信发", "寄给您"]
                .iter()
                .any(|w| self.current_text().contains(w))
        {
            intent = if c.negative_word.is_some() {
                Intent::Negative
            } else {
                Intent::Agree
            };
        }
        // "能进，我用密码开的" to "您现在能正常进家门吗？": the question's own verb said
        // back is the answer.
        let echoed = (intent == Intent::Statement && kind == StepKind::Confirm)
            .then(|| echo_answer(&c.text, &self.current_text()))
            .flatten();
        match echoed {
            Some(true) => intent = Intent::Agree,
            Some(false) => intent = Intent::Negative,
            None => {}
        }
        // Low ASR confidence on content we would act on: ask again.
        if confidence < MIN_CONFIDENCE
            && matches!(
                intent,
                Intent::Statement | Intent::OffTopic | Intent::Question | Intent::Decline
            )
        {
            actions.push(self.builtin(LOW_CONFIDENCE));
            return None;
        }
        // A worried question ("你们不会是骗子吧？") is answered with a reassurance.
        if WORRY.iter().any(|w| c.text.contains(w))
            && matches!(
                c.intent,
                Intent::Question | Intent::Statement | Intent::AskIdentity | Intent::Negative
            )
        {
            // "你们不会是骗子吧，上门检查还要收钱那种": the reassurance, then what
            // the rest of the sentence asks, when the Q&A knows it.
            let rest: Vec<&str> = c
                .text
                .split(['，', ',', '。', '？', '?', '！', '；'])
                .filter(|cl| !cl.trim().is_empty() && !WORRY.iter().any(|w| cl.contains(w)))
                .collect();
            let rest = rest.join("，");
            let hit = match self.kb.answer(&c.text).filter(|(h, _)| h.confidence >= 0.5) {
                Some(_) => self.answer_question(c, actions),
                None => {
                    // On a call we placed, a careful agent says again who is
                    // calling and why ("我是…服务中心的小郑，您之前在社区登记了…").
                    // An opening that asks for the callee by name (请问是王女士吗) is
                    // a call we placed, whatever else it names.
                    let placed = !self.caller_rang_us()
                        || ["请问是", "请问您是"]
                            .iter()
                            .any(|w| self.script.opening.contains(w));
                    match self_introduction(&self.script.opening).filter(|_| placed) {
                        Some(intro) => {
                            actions.push(Action::Say {
                                text: intro,
                                step: Some(self.current_step()),
                                interruptible: true,
                                fixed: false,
                            });
                            actions.push(self.builtin(REASSURE_OUTBOUND));
                        }
                        None => actions.push(self.builtin(REASSURE)),
                    }
                    let asks_more = rest.chars().filter(|ch| super::text::is_han(*ch)).count() >= 4
                        && self.kb.answer(&rest).is_some();
                    if asks_more {
                        let asked = Classified {
                            text: rest,
                            ..c.clone()
                        };
                        self.answer_question(&asked, actions)
                    } else {
                        None
                    }
                }
            };
            self.resume(actions);
            return hit;
        }
        // "我是他儿子，有什么事跟我说吧": a relative answers for the callee; the
        // script's line for that case (若接电话的是家属：…) is said and the call goes on
        // past the identity question.
        if matches!(self.state, State::Opening) || self.step_index() == Some(0) {
            if let Some(relation) = super::intent::family_proxy(&c.text) {
                self.record("代接", relation, actions);
                let line = self.script.steps.iter().take(2).find_map(|st| {
                    st.conditionals
                        .iter()
                        .find(|b| {
                            ["家属", "家人", "家里人", "代接", "亲属", "子女", "其他人"]
                                .iter()
                                .any(|k| b.condition.contains(k))
                        })
                        .map(|b| b.line.clone())
                });
                match line {
                    Some(l) => actions.push(self.say(&l, self.step_index(), true)),
                    // A script that keeps the matter from anyone but the callee
                    // ("接电话的不是本人：不说订单内容…麻烦您转告") says so to relatives too.
                    None if self.not_the_person_line().is_some() => {
                        self.say_wrong_person(&c.text, actions);
                        self.record("reason", "not_the_callee", actions);
                        self.finish(Outcome::Declined, actions);
                        return None;
                    }
                    None => actions.push(self.builtin(OK_SHORT)),
                }
                let mut next = match self.state {
                    State::Opening => usize::from(self.skip_first_step),
                    State::Step(i) => i + 1,
                    _ => 0,
                };
                if self.script.steps.get(next).is_some_and(is_identity_step) {
                    next += 1;
                }
                self.enter_step(next, actions);
                return None;
            }
        }
        // "科目三" to "您这次要练科目二还是科目三？": a choice, recorded as the step's
        // value rather than taken as a yes.
        if let (StepKind::Confirm, Some(i)) = (kind, self.step_index()) {
            let choice = either_options(&self.script.steps[i].text())
                .into_iter()
                .find(|o| c.text.contains(o.as_str()));
            if let Some(choice) = choice.filter(|_| c.intent != Intent::Question) {
                if self.branch_kind.is_none() && !self.branch_offer {
                    let title = self.script.steps[i].title.clone();
                    self.record(&title, &choice, actions);
                    self.prefill_from(&c.text, i + 1, now);
                    self.advance(actions);
                    return None;
                }
            }
        }
        // "可以，复诊要多久啊": a yes to the step's question and a question of the
        // caller's own in one breath: the yes is taken, the question answered, and
        // the call goes on.
        // The same at an opening that asks who answers ("是我。送货要钱吗？").
        let identity_opening = matches!(self.state, State::Opening)
            && kind == StepKind::Confirm
            && asks_identity(&self.script.opening);
        let confirming = match self.step_index() {
            Some(i) if kind == StepKind::Confirm => Some(self.script.steps[i].title.clone()),
            None if identity_opening => Some("opening".to_string()),
            _ => None,
        };
        if let Some(title) = confirming {
            if let Some(rest) = yes_then_question(&c.text, now) {
                if self.branch_kind.is_none() && !self.branch_offer {
                    self.record(&format!("confirm:{title}"), "是", actions);
                    self.record_proposed_time(actions);
                    let asked = classify(&rest, now);
                    let hit = self.answer_question(&asked, actions);
                    self.advance(actions);
                    return hit;
                }
            }
        }
        // The answer to a branch's own offer ("…我们可以送货上门，您需要送上门吗？").
        if let (Some(i), true) = (self.step_index(), self.branch_offer) {
            let no = c.intent == Intent::Negative
                || c.intent == Intent::Decline
                || ["不用", "不要", "不需要", "算了"]
                    .iter()
                    .any(|w| c.text.contains(w));
            // A value for the step the branch leads to ("幸福里小区3栋502") is a yes too.
            let gives_next_value = self
                .script
                .steps
                .get(i + 1)
                .and_then(|st| st.field)
                .is_some_and(|k| slots::extract(k, &c.text, now).is_some());
            let yes = !no
                && (c.intent == Intent::Agree
                    || gives_next_value
                    || ["要", "需要", "送", "好", "行", "可以"]
                        .iter()
                        .any(|w| c.text.contains(w)));
            if yes || no {
                self.branch_offer = false;
                let title = self.script.steps[i].title.clone();
                self.record(
                    &format!("branch:{title}"),
                    if yes { "是" } else { "否" },
                    actions,
                );
                if yes {
                    // What the caller said with the yes may answer the next step
                    // ("送上门吧，我家在幸福里5栋302").
                    self.prefill_from(&c.text, i + 1, now);
                    actions.push(self.builtin(OK_SHORT));
                    self.advance(actions);
                } else {
                    self.branches_taken.remove(&i);
                    self.resume(actions);
                }
                return None;
            }
        }
        // An opening that is the first step's question: that step's branches hold
        // ("豆豆上个月走了" to "请问是豆豆的主人吗？").
        if self.state == State::Opening
            && self.skip_first_step
            && !self.branches_taken.contains(&0)
            && (matches!(
                c.intent,
                Intent::Statement | Intent::Negative | Intent::Decline | Intent::OffTopic
            ) || (c.intent == Intent::Question && self.kb.answer(&c.text).is_none()))
        {
            // "有个马蜂窝，能来弄掉吗": a question the Q&A does not answer can be the
            // case a branch handles.
            if let Some(done) = self.take_said_branch(0, c, now, actions) {
                return done;
            }
        }
        // Steps that collect a value: pick it out of the sentence, or take the
        // script's branch when the caller cannot give it or wants it changed.
        if let Some(i) = self.step_index() {
            if let Some(done) = self.on_value_reply(i, c, now, actions) {
                return done;
            }
        }
        // An inbound caller states the need at the opening.
        if (matches!(self.state, State::Opening) && kind == StepKind::AnyQuestions)
            || (self.state == State::Step(0) && self.answered == 0)
        {
            if let Some(done) = self.on_need(c, now, actions) {
                return done;
            }
        }
        // Context: a "no" to "is now a good time?" is not convenient / a refusal.
        if kind == StepKind::Convenience && intent == Intent::Negative {
            let t = &c.text;
            intent = if t.contains("不是") && !t.contains("方便") {
                Intent::WrongPerson
            } else if t.contains("不用") || t.contains("不需要") || t.contains("不要") {
                Intent::Decline
            } else {
                Intent::NotConvenient
            };
        }
        // "不需要" to "您需要我们上门取车吗？" answers the question; it does not end the call.
        if kind == StepKind::Confirm && intent == Intent::Decline {
            let asks_need = self.step_index().is_some_and(|i| {
                let q = self.script.steps[i].text();
                ["需要", "要不要", "用不用"].iter().any(|w| q.contains(w))
            });
            if asks_need
                && (is_short(&c.text)
                    || ["不需要", "不用", "不要"]
                        .iter()
                        .any(|w| c.text.starts_with(w)))
            {
                intent = Intent::Negative;
            }
        }
        // "晚上打游戏老卡，是不是你们网有问题": small-talk words in a sentence the Q&A
        // answers are part of a service question.
        if intent == Intent::OffTopic && c.question_like && self.kb.answer(&c.text).is_some() {
            intent = Intent::Question;
        }
        // "嗯，墙上要打孔…" : a filler does not make a question an acknowledgement.
        if intent == Intent::Agree
            && echoed.is_none()
            && !is_short(&c.text)
            && implies_question(&c.text)
            && self
                .kb
                .answer(&c.text)
                .is_some_and(|(h, _)| h.confidence >= STATEMENT_KB_CONFIDENCE)
        {
            intent = Intent::Question;
        }
        // Free text where the step asks for it is recorded verbatim.
        let wants_text = matches!(
            kind,
            StepKind::Feedback | StepKind::SpecialNeed | StepKind::Info
        );
        // "腿脚不方便" answers a special-needs question; it is not "call me later".
        if wants_text
            && intent == Intent::NotConvenient
            && c.callback.is_none()
            && !CALL_BUSY.iter().any(|k| c.text.contains(k))
        {
            intent = Intent::SpecialNeed;
        }
        if wants_text && matches!(intent, Intent::Statement | Intent::SpecialNeed)
            || (wants_text
                && intent == Intent::Agree
                && (kind == StepKind::Feedback || !is_short(&c.text)))
        {
            let key = match kind {
                StepKind::Feedback => "feedback".to_string(),
                StepKind::SpecialNeed => "special_need".to_string(),
                _ => title.clone(),
            };
            // A reading asked for ("血压是多少？") is written down in digits.
            let asks_count = matches!(self.state, State::Step(i)
                if self.script.steps[i].text().contains("多少"));
            let value = if asks_count {
                slots::numerals_to_digits(&c.text)
            } else if let Some(d) = slots::digits_read_out(&c.text) {
                // "幺零，四七，二九": digits read out in groups are one number.
                d
            } else {
                c.text.clone()
            };
            self.record(&key, &value, actions);
            let ack = if kind == StepKind::Feedback {
                FEEDBACK_ACK
            } else if kind == StepKind::SpecialNeed {
                SPECIAL_ACK
            } else {
                NOTED
            };
            actions.push(self.builtin(ack));
            self.advance(actions);
            return None;
        }
        match intent {
            Intent::WrongPerson => {
                self.say_wrong_person(&c.text, actions);
                self.record("reason", "wrong_person", actions);
                self.finish(Outcome::Declined, actions);
                None
            }
            Intent::NotConvenient => {
                if !self.slot_moved_ahead(c, actions) {
                    self.offer_callback(c, now, actions);
                }
                None
            }
            Intent::Decline => {
                actions.push(self.builtin(DECLINE));
                self.record("reason", &c.text, actions);
                self.finish(Outcome::Declined, actions);
                None
            }
            Intent::DocsRequest => {
                self.start_email(c, actions);
                None
            }
            Intent::Question | Intent::AskIdentity => {
                // Before the content starts, "什么事？/哪位？" is answered by the steps.
                let about_the_call = is_short(&c.text)
                    || [
                        "什么事",
                        "啥事",
                        "哪位",
                        "谁",
                        "干嘛",
                        "干什么",
                        "哪里打",
                        "哪打",
                    ]
                    .iter()
                    .any(|w| c.text.contains(w));
                if matches!(kind, StepKind::Convenience)
                    && (about_the_call && self.kb.answer(&c.text).is_none()
                        || echoes_purpose(&c.text, &self.current_text()))
                    && c.intent != Intent::AskIdentity
                {
                    self.advance(actions);
                    return None;
                }
                let hit = self.answer_question(c, actions);
                self.resume(actions);
                hit
            }
            Intent::SpecialNeed => {
                self.record("special_need", &c.text, actions);
                actions.push(self.builtin(SPECIAL_ACK));
                if is_question_kind(kind) && kind != StepKind::AnyQuestions {
                    self.resume(actions);
                } else {
                    self.advance(actions);
                }
                None
            }
            Intent::Goodbye => {
                if self.answered > 0 || self.progress() >= 0.6 || kind == StepKind::AnyQuestions {
                    self.close(actions);
                } else {
                    actions.push(self.builtin(EARLY_BYE));
                    self.finish(Outcome::Declined, actions);
                }
                None
            }
            Intent::OffTopic => {
                actions.push(self.builtin(STEER_BACK));
                let q = if kind == StepKind::Statement {
                    self.current_text()
                } else {
                    short_question(&self.current_text())
                };
                let idx = self.step_index();
                actions.push(self.say(&q, idx, true));
                None
            }
            Intent::Negative => {
                match kind {
                    StepKind::Feedback => {
                        // "一般吧，电话等得有点久，没别的了": the remark is the feedback.
                        let remark = feedback_remark(&c.text);
                        self.record("feedback", remark.unwrap_or("无"), actions)
                    }
                    StepKind::SpecialNeed => self.record("special_need", "无", actions),
                    StepKind::Confirm => self.record(&format!("confirm:{title}"), "否", actions),
                    _ => {}
                }
                self.advance(actions);
                None
            }
            Intent::Agree => {
                if kind == StepKind::Confirm {
                    self.record(&format!("confirm:{title}"), "是", actions);
                    self.record_proposed_time(actions);
                }
                if matches!(kind, StepKind::Confirm | StepKind::Convenience) {
                    self.note_affirmed_ahead(&c.text);
                    // "是我是我，我明天中午过去拿": a value for a later step said with
                    // the yes.
                    if !is_short(&c.text) {
                        let next = self.step_index().map_or(0, |i| i + 1);
                        self.prefill_from(&c.text, next, now);
                        let entered = match self.state {
                            State::Opening => usize::from(self.skip_first_step),
                            _ => next,
                        };
                        self.prefill_reading(&c.text, entered);
                    }
                }
                if kind == StepKind::AnyQuestions
                    && matches!(self.state, State::Opening)
                    && self.answered == 0
                {
                    // "嗯" to "有什么可以帮您？": ask again, the caller has not said why.
                    let q = short_question(&self.script.opening);
                    actions.push(self.say(&q, None, true));
                } else {
                    self.advance(actions);
                }
                None
            }
            Intent::Statement => {
                // Maybe a question without question words.
                let has_value = slots::extract_phone(&c.text).is_some()
                    || slots::extract_serial(&c.text).is_some();
                // A statement is not a question: only where the agent has just asked
                // "what can I do for you?" may a strong Q&A match answer it.
                if let Some((hit, _)) = self.kb.answer(&c.text).filter(|(h, _)| {
                    !has_value
                        && (h.confidence >= STATEMENT_AS_QUESTION && implies_question(&c.text)
                            || kind == StepKind::AnyQuestions
                                && h.confidence >= STATEMENT_KB_CONFIDENCE)
                }) {
                    let _ = hit;
                    let h = self.answer_question(c, actions);
                    self.resume(actions);
                    return h;
                }
                if kind == StepKind::AnyQuestions && has_value {
                    // "账号是HZ20261243": a value to note, not a question.
                    self.note_values(&c.text, now, actions);
                    actions.push(self.builtin(NOTED));
                    self.resume(actions);
                    return None;
                }
                if kind == StepKind::AnyQuestions {
                    let h = self.answer_question(c, actions);
                    self.resume(actions);
                    return h;
                }
                if !is_short(&c.text) {
                    self.record("remarks", &c.text, actions);
                    actions.push(self.builtin(NOTED));
                }
                self.advance(actions);
                None
            }
            Intent::Hold => {
                // Stay on this step; the next silence is not held against them.
                actions.push(self.builtin(HOLD));
                self.held = true;
                None
            }
            Intent::Hostile
            | Intent::Abusive
            | Intent::Transfer
            | Intent::Repeat
            | Intent::Silence => None,
        }
    }

    /// The callee said nothing until the silence timeout.
    pub fn on_silence(&mut self, _now: DateTime<FixedOffset>) -> TurnResult {
        let mut actions = Vec::new();
        if matches!(self.state, State::Ended | State::NotStarted) {
            return self.result(Intent::Silence, actions, None);
        }
        self.silences += 1;
        let statement = matches!(self.state, State::Step(_))
            && self.current_kind() == StepKind::Statement
            && !self.held;
        if statement && self.silences == 1 {
            // Silence after information means listening: go on.
            self.advance(&mut actions);
        } else if self.reprompts < 2 {
            self.reprompts += 1;
            if self.reprompts == 1 {
                actions.push(self.builtin(SILENCE_1));
                if is_question_kind(self.current_kind())
                    && matches!(self.state, State::Step(_) | State::Opening)
                {
                    let q = short_question(&self.current_text());
                    let idx = self.step_index();
                    actions.push(self.say(&q, idx, true));
                }
            } else {
                actions.push(self.builtin(SILENCE_2));
            }
        } else {
            actions.push(self.builtin(SILENCE_CLOSE));
            self.finish(Outcome::NoResponse, &mut actions);
        }
        self.result(Intent::Silence, actions, None)
    }

    /// The callee hung up (or the input ended) before the agent closed.
    pub fn on_hangup(&mut self, _now: DateTime<FixedOffset>) -> Option<Outcome> {
        if self.state == State::Ended {
            return self.outcome;
        }
        let outcome = if self.callback_at.is_some() {
            Outcome::CallbackScheduled
        } else if !self.heard_anything {
            Outcome::NoResponse
        } else if self.answered > 0 || self.progress() >= 0.8 {
            Outcome::Completed
        } else {
            Outcome::Declined
        };
        self.fields.insert("ended_by".into(), "callee".into());
        self.outcome = Some(outcome);
        self.state = State::Ended;
        Some(outcome)
    }

    /// The summary for the final record line.
    pub fn summary(&self) -> CallSummary {
        CallSummary {
            outcome: self.outcome,
            fields: self.fields.clone(),
            callback_at: self.callback_at.map(|t| t.to_rfc3339()),
            steps: self.path.clone(),
        }
    }
}

/// What the agent's last prompt expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expecting {
    Nothing,
    Step(StepKind),
    CallbackTime,
    Email,
    EmailConfirmation,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap()
    }

    #[test]
    fn an_outbound_opening_says_who_calls_and_why() {
        assert_eq!(
            self_introduction("您好，请问是王阿姨吗？我是安心宠物医院的小安，您家狗狗的疫苗快到期了，现在方便吗？").as_deref(),
            Some("我是安心宠物医院的小安，您家狗狗的疫苗快到期了。")
        );
        assert_eq!(
            self_introduction("您好，这里是城北图书馆，打扰您一下。").as_deref(),
            Some("这里是城北图书馆。")
        );
        assert_eq!(self_introduction("您好，请问现在方便吗？"), None);
    }

    #[test]
    fn a_time_of_day_falls_on_the_proposed_day() {
        let line = "系统给您排在12月10日周四送货，上午9点到12点或者下午2点到6点两个时段，您看哪个时段方便？";
        let v = slots::wanted_time("那天下午吧", now()).unwrap_or_default();
        assert!(on_proposed_day(&v, "那天下午吧", line, now()).starts_with("2026-12-10T"));
        // A day the caller names stands.
        let v = slots::wanted_time("周五上午", now()).unwrap_or_default();
        assert!(on_proposed_day(&v, "周五上午", line, now()).starts_with("2026-12-11T"));
    }

    #[test]
    fn values_past_a_branchs_limit() {
        let now = now();
        let past = |cond: &str, v: &str| time_past_limit(cond, v, now);
        assert_eq!(
            past("如果要约今天", "2026-12-07T15:00:00+08:00").as_deref(),
            Some("")
        );
        assert_eq!(past("如果要约今天", "2026-12-08T15:00:00+08:00"), None);
        assert_eq!(
            past("如果科目三要约晚上或者周日", "2026-12-13T10:00:00+08:00").as_deref(),
            Some("科目三")
        );
        assert!(past("如果客户要晚上六点以后", "2026-12-08T19:00:00+08:00").is_some());
        assert!(past("如果客户要晚上六点以后", "2026-12-08T17:00:00+08:00").is_none());
        assert!(past("如果客户要换时间", "2026-12-07T15:00:00+08:00").is_none());
        assert!(count_past_limit("如果超过4个", "6").is_some());
        assert!(count_past_limit("如果超过4个", "4").is_none());
        assert!(count_past_limit("如果没有", "6").is_none());
    }

    #[test]
    fn offered_services_choices_and_identity_questions() {
        assert_eq!(
            offered_service("您好，顺驰驾校。请问您是要预约练车，还是有别的事情要办？").as_deref(),
            Some("预约练车")
        );
        assert_eq!(offered_service("请问有什么可以帮您？"), None);
        assert_eq!(
            either_options("好的，请问您这次要练科目二还是科目三？"),
            ["科目二", "科目三"]
        );
        assert!(either_options("这个时间还可以吗？").is_empty());
        assert!(asks_identity(
            "您好，这里是禾木租房客服中心，我是小禾，请问是林晓雨吗？"
        ));
        assert!(asks_identity("请问您是林晓雨本人吗？"));
        assert!(!asks_identity("请问您现在方便吗？"));
    }

    #[test]
    fn asking_whether_something_can_be_done_tells_no_trouble() {
        assert!(!tells_problem("小区里能不能给装个新信箱？"));
        assert!(!tells_problem("你们能不能周末上门"));
        assert!(tells_problem("冰箱不能制冷了"));
        assert!(tells_problem("能不能快点来，水管漏得厉害"));
        assert!(tells_problem("电视开不了机"));
    }

    #[test]
    fn conditions_said_in_a_plain_clause() {
        assert!(says_condition("若客户说疼得厉害", "疼得厉害，晚上都睡不着"));
        assert!(says_condition(
            "若对方说疼得厉害",
            "这两天疼得厉害，饭都吃不下"
        ));
        // The condition denied in the same clause is not said.
        assert!(!says_condition(
            "若客户说疼得厉害",
            "不是疼得厉害，就是有点酸"
        ));
        assert!(!says_condition("若对方说今年已经打过了", "今年还没打过"));
    }

    #[test]
    fn conditions_said_in_other_words() {
        // A threshold on an amount.
        assert!(says_condition("若水温低于四十度", "才三十五度"));
        assert!(!says_condition("若水温低于四十度", "有五十度"));
        assert!(says_condition("如果老人超过八十岁", "我妈今年八十五岁了"));
        // A verb with its result denied.
        assert!(says_condition("如果对方来不了", "这周我去不了，在外地"));
        assert!(says_condition("若用户修不好", "我自己弄了半天修不好"));
        // Refusing the thing itself.
        assert!(says_condition(
            "若对方不想参加这次培训",
            "培训我就不去了，没时间"
        ));
        assert!(says_condition("如果客户不打算续保", "续保的事就算了吧"));
        assert!(!says_condition(
            "若对方不想参加这次培训",
            "培训那天不去了，改到下周吧"
        ));
        // A wish said by its content, a compound verb by its head.
        assert!(says_condition("若对方要邮寄", "帮我寄到单位吧"));
        assert!(says_condition("如果客户想退货", "退货吧，不想要了"));
        assert!(!says_condition("若对方要邮寄", "我自己过去拿"));
        // Meaning classes: away at work, who needs care.
        assert!(says_condition("若用户白天都要上班", "白天家里没有人"));
        assert!(says_condition("若家里有老人、孕妇", "我家老爷子九十多岁了"));
        assert!(says_condition("若家中有病人", "我老伴刚做完手术"));
    }

    #[test]
    fn branches_said_in_everyday_words() {
        // One alternative of several, the call-handling ones aside.
        assert!(says_condition(
            "如对方表示没空过来、家里没人照看，或者孩子不肯去",
            "孩子死活不肯去"
        ));
        // Done already, somewhere else.
        assert!(says_condition(
            "若客户说已经在别家办过了",
            "上个月我在单位附近那家办过了"
        ));
        assert!(!says_condition("若客户说已经在别家办过了", "还没办过"));
        // Passed away, as people say it.
        assert!(says_condition("如果对方说已经过世了", "我父亲去年走了"));
        assert!(says_condition(
            "若对方说猫已经送人了，或者已经不在了",
            "它上个月没救过来"
        ));
        assert!(!says_condition("如果对方说已经过世了", "他刚出门，不在家"));
    }

    #[test]
    fn a_yes_with_a_question_is_no_check_of_who_we_are() {
        let opening = "您好，我是筑家装饰的客服小唐，您之前预约了免费上门量房，现在方便吗？";
        assert!(!checks_who_we_are("是我。量房收费吗？", opening));
        assert!(!checks_who_we_are("是的，量房收费吗", opening));
        assert!(checks_who_we_are("是筑家装饰的吧？", opening));
    }

    #[test]
    fn coming_and_going_are_one_verb() {
        assert!(says_condition("若客户不打算来了", "这次不去了，帮我取消吧"));
        assert!(says_condition("若对方不来了", "我不来了"));
        assert!(says_condition("若客户不去了", "算了我不来了"));
        assert!(!says_condition("若客户不打算来了", "我能来"));
    }

    #[test]
    fn letters_left_out_of_a_serial() {
        let line = "麻烦您报一下学员证号，在学员证正面照片下面，LD 开头，后面六位数字。";
        assert_eq!(with_letter_prefix(line, "260392".into()), "LD260392");
        assert_eq!(with_letter_prefix(line, "2603921".into()), "2603921");
        assert_eq!(with_letter_prefix(line, "LD260392".into()), "LD260392");
        let card = "是KT两个字母加八位数字";
        assert_eq!(with_letter_prefix(card, "20170481".into()), "KT20170481");
    }

    #[test]
    fn lines_that_ask_and_serial_prefixes() {
        assert!(asks_something("工作日也可以，您说一个方便的日子和时间。"));
        assert!(asks_something("麻烦报一下会员卡号。"));
        assert!(!asks_something(
            "没关系，先按普通订单处理，单号找到以后在小程序里补上就行。"
        ));
        assert!(names_letter_prefix(
            "麻烦报一下运单号，SF开头，后面十二位数字。"
        ));
        assert!(names_letter_prefix("是KT两个字母加八位数字。"));
        assert!(!names_letter_prefix("麻烦报一下八位的会员号。"));
    }

    #[test]
    fn alternative_closing_lines() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Alternatives: the success line, after the lead-up without a goodbye.
        assert_eq!(
            completed_closing(v(&[
                "好的，报修单已经提交了。",
                "师傅会按时上门，再见。",
                "感谢来电，有需要随时打给我们，再见。",
            ])),
            v(&["好的，报修单已经提交了。", "师傅会按时上门，再见。"])
        );
        assert_eq!(
            completed_closing(v(&["好的，打扰您了，再见。", "那就周三见，再见。"])),
            v(&["那就周三见，再见。"])
        );
        // Lines that end together are all said.
        let together = v(&["感谢您的耐心。", "祝您生活愉快，再见。"]);
        assert_eq!(completed_closing(together.clone()), together);
    }

    #[test]
    fn yes_and_a_question() {
        assert_eq!(
            yes_then_question("可以，复诊要多久啊", now()).as_deref(),
            Some("复诊要多久啊")
        );
        assert_eq!(
            yes_then_question("行，我这边需要提前收拾点什么吗", now()).as_deref(),
            Some("我这边需要提前收拾点什么吗")
        );
        assert!(yes_then_question("好的，停车方便吗", now()).is_some());
        // A condition on the yes, or a change, is not split off.
        assert!(yes_then_question("可以，能不能改到下午", now()).is_none());
        assert!(yes_then_question("行，明天下午三点可以吗", now()).is_none());
        assert!(yes_then_question("复诊要多久啊", now()).is_none());
    }

    #[test]
    fn loose_times() {
        assert!(vague_time("明天不行，下周吧"));
        assert!(vague_time("这周没空，过几天吧"));
        assert!(!vague_time("明天不行，下周一下午两点"));
        assert!(!vague_time("改到下周三"));
        assert!(!vague_time("下周上午都可以"));
    }

    #[test]
    fn where_and_when_said_in_the_line() {
        assert_eq!(
            where_in_line("请您报一下供热户号，在缴费发票或者供热卡上，是八位数字。").as_deref(),
            Some("在缴费发票或者供热卡上")
        );
        assert_eq!(
            where_in_line("麻烦您看一下，编号一般在机器背面的标签上。").as_deref(),
            None
        );
        assert_eq!(
            where_in_line("取件码一般在短信里，您报一下后四位。").as_deref(),
            None
        );
        assert_eq!(
            where_in_line("卡号就在医保卡正面，请您念一下。").as_deref(),
            None
        );
        assert_eq!(
            where_in_line("请您报一下卡号，就在医保卡正面，一共十位。").as_deref(),
            Some("就在医保卡正面")
        );
        assert!(asks_where("户号在哪能看到啊"));
        assert!(asks_where("这个编号去哪找"));
        assert!(!asks_where("我找不到"));
        let lines = ["您看哪天过来打？周一到周五上午八点到十一点半、下午一点半到四点都可以。"];
        assert_eq!(
            time_in_lines("对了，下午最晚几点还给打？", lines.iter().copied()).as_deref(),
            Some("下午一点半到四点都可以")
        );
        assert_eq!(
            time_in_lines("上午几点开始", lines.iter().copied()).as_deref(),
            Some("周一到周五上午八点到十一点半")
        );
        assert!(time_in_lines("周末几点开门", lines.iter().copied()).is_none());
        assert!(time_in_lines("要带什么", lines.iter().copied()).is_none());
    }

    #[test]
    fn feedback_with_a_remark() {
        assert!(feedback_remark("一般吧，电话等得有点久，没别的了").is_some());
        assert!(feedback_remark("满意，就是希望晚上也有人接，没有了").is_some());
        assert!(feedback_remark("满意，没别的问题了").is_none());
        assert!(feedback_remark("挺好的，没有了").is_none());
    }

    #[test]
    fn guesses_at_the_purpose() {
        let line = "打电话跟您确认明天洗衣机上门维修的事，您现在方便吗？";
        assert!(echoes_purpose("你们要来修洗衣机是吧", line));
        let q = "请问您现在能正常进家门吗？";
        assert_eq!(echo_answer("能进，我用密码开的", q), Some(true));
        assert_eq!(echo_answer("不能，被关在外面了", q), Some(false));
        assert_eq!(echo_answer("进不去啊", q), Some(false));
        assert_eq!(echo_answer("我用密码开的", q), None);
        assert_eq!(echo_answer("有的，两台", "家里有没有空调？"), Some(true));
        assert!(echoes_purpose("是明天上门维修对吧", line));
        assert!(!echoes_purpose("你们那边有没有卖烘干机的", line));
        assert!(!echoes_purpose("洗衣机维修要多少钱", line));
    }
}
