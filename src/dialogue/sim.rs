//! Persona simulator: seeded simulated callees built from the callee half of a
//! script (behaviours, reply examples, concerns) plus generic variants (busy →
//! callback, refusal, hostile, silent, e-mail seeker, questioner, distracted).
//!
//! Each simulated callee knows the outcome its behaviour should lead to; the
//! report compares it with the outcome the engine reached. Questions are
//! paraphrased from the script's Q&A (the KB is never fed its own wording) and
//! utterances get ASR-like noise (homophones, no punctuation, fillers). Expected
//! callback times are computed here independently of the engine's parser.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveTime, TimeZone};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::engine::{Conversation, Expecting, Outcome, TurnResult};
use super::script::{Script, StepKind};
use super::text::strip_markup;
use super::DialogueError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonaKind {
    Cooperative,
    Questioner,
    EmailSeeker,
    Busy,
    Refuser,
    Hostile,
    Silent,
    Distracted,
}

impl PersonaKind {
    fn name(self) -> &'static str {
        match self {
            PersonaKind::Cooperative => "cooperative",
            PersonaKind::Questioner => "questioner",
            PersonaKind::EmailSeeker => "email",
            PersonaKind::Busy => "busy",
            PersonaKind::Refuser => "refuser",
            PersonaKind::Hostile => "hostile",
            PersonaKind::Silent => "silent",
            PersonaKind::Distracted => "distracted",
        }
    }
    fn expected(self) -> Outcome {
        match self {
            PersonaKind::Busy => Outcome::CallbackScheduled,
            PersonaKind::Refuser => Outcome::Declined,
            PersonaKind::Hostile => Outcome::DoNotCall,
            PersonaKind::Silent => Outcome::NoResponse,
            _ => Outcome::Completed,
        }
    }
}

/// One simulated call.
#[derive(Debug, Clone, Serialize)]
pub struct SimCall {
    pub index: usize,
    pub persona: &'static str,
    pub expected: Outcome,
    pub reached: Option<Outcome>,
    pub ok: bool,
    pub note: String,
    pub turns: usize,
    pub transcript: Vec<String>,
}

/// The result of a simulation run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SimReport {
    pub calls: Vec<SimCall>,
    pub reached: usize,
    pub kb_questions: usize,
    pub kb_correct: usize,
    pub max_turn_us: u128,
    pub total_turn_us: u128,
    pub turns: usize,
    /// Every turn's handling time, for percentiles.
    #[serde(skip)]
    pub turn_us: Vec<u128>,
}

impl SimReport {
    pub fn rate(&self) -> f64 {
        if self.calls.is_empty() {
            0.0
        } else {
            self.reached as f64 / self.calls.len() as f64
        }
    }
    /// The `p`-th percentile (0..=100) of turn handling time in µs.
    pub fn percentile_us(&self, p: f64) -> u128 {
        if self.turn_us.is_empty() {
            return 0;
        }
        let mut v = self.turn_us.clone();
        v.sort_unstable();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[i.min(v.len() - 1)]
    }

    pub fn mean_turn_us(&self) -> f64 {
        if self.turns == 0 {
            0.0
        } else {
            self.total_turn_us as f64 / self.turns as f64
        }
    }
}

const ACKS: &[&str] = &[
    "嗯",
    "好的",
    "嗯嗯，您说",
    "可以",
    "明白了",
    "收到",
    "好，继续吧",
    "行，知道了",
    "嗯，了解",
    "对，没问题",
    "哦好的",
];
const CONVENIENT: &[&str] = &[
    "方便，您说",
    "嗯，是我，你说吧",
    "可以，简单说下重点",
    "是我，有什么事您讲",
    "嗯您好，可以的",
    "行，说吧",
];
const NO_MORE: &[&str] = &[
    "没有了，谢谢",
    "暂时没有",
    "没了，都挺清楚的",
    "没别的问题了",
    "没有，就这样",
];
const FEEDBACK: &[&str] = &[
    "整体还行，希望以后通知能再早一点",
    "我觉得流程说得挺清楚，就是变更最好提前一天告诉我们",
    "建议你们以后发个书面的时间表",
    "没什么大问题，希望准时完成别拖",
];
const NEEDS: &[&str] = &[
    "我们晚上有夜班，值班的同事得能随时找到你们",
    "那段时间有个关键业务在跑，麻烦你们保障一下",
    "家里有老人，希望上门前先打个电话",
    "我们那边是三班倒，最好提前跟值班的人打招呼",
];
const INFOS: &[&str] = &[
    "订单号是七七八八九九零",
    "地址是滨江区长河路一百号",
    "我的手机号是一三九零零零零一二三四",
    "是我本人的名字登记的",
];
const REFUSALS: &[&str] = &[
    "不需要，谢谢",
    "我没兴趣，不用说了",
    "不用了，我不需要这个",
    "不感兴趣，先这样",
    "不想听，谢谢",
];
const HOSTILE: &[&str] = &[
    "别再给我打电话了",
    "你们烦不烦啊，以后别打了",
    "骚扰电话是吧，以后别再打了",
    "不要再打了，把我号码删了",
];
const REPEATS: &[&str] = &[
    "不好意思刚刚走神了，能再说一遍吗",
    "啊？没听清",
    "你说什么？信号不太好",
    "能再重复一下吗",
    "刚才说啥来着",
];
const OFF_TOPIC: &[&str] = &[
    "今天天气真不错啊",
    "你们那边吃饭了吗",
    "哈哈哈，我同事在旁边讲笑话",
];
const DOCS: &[&str] = &[
    "资料发我邮箱吧",
    "麻烦把详细说明发个邮件给我",
    "电话里说不清，书面的发我一份",
    "你把文档发我邮箱，我归档用",
];
const Q_PREFIX: &[&str] = &[
    "",
    "我想问一下，",
    "那个，",
    "请问",
    "对了，",
    "还有个问题，",
    "嗯，",
];

/// Rewrites that keep the meaning of a question but change its surface.
const REWRITES: &[(&str, &str)] = &[
    ("能不能", "可不可以"),
    ("可以", "能"),
    ("如何", "怎么"),
    ("什么", "啥"),
    ("是否", "是不是"),
    ("吗？", "不？"),
    ("多长时间", "多久"),
    ("需要", "要"),
    ("我们", "咱们"),
    ("你们", "贵方"),
    ("提前", "事先"),
    ("详情", "具体内容"),
    ("怎么办", "咋办"),
    ("收费", "要钱"),
    ("告知", "通知"),
    ("进度", "进展"),
];

/// Same-sound character swaps an ASR engine makes.
const HOMOPHONES: &[(&str, &str)] = &[
    ("邮箱", "油箱"),
    ("再", "在"),
    ("可以", "可已"),
    ("知道", "知到"),
    ("清楚", "清除"),
    ("一下", "一夏"),
    ("说明", "说名"),
];

fn asr_noise(s: &str, rng: &mut StdRng) -> String {
    let mut t = s.to_string();
    if rng.random_bool(0.3) {
        if let Some((a, b)) = HOMOPHONES.choose(rng) {
            t = t.replacen(a, b, 1);
        }
    }
    if rng.random_bool(0.6) {
        t.retain(|c| !matches!(c, '，' | '。' | '？' | '！' | ',' | '?' | '、' | '；'));
    }
    if rng.random_bool(0.15) {
        t = format!("呃{t}");
    }
    t
}

/// A paraphrase of a KB question: prefix, meaning-preserving rewrites, and
/// sometimes only one clause of a compound question.
pub fn paraphrase(q: &str, rng: &mut StdRng) -> String {
    let q = strip_markup(q);
    let clauses: Vec<&str> = q
        .split(['？', '?'])
        .map(str::trim)
        .filter(|c| c.chars().count() >= 4)
        .collect();
    let mut body = if clauses.len() >= 2 && rng.random_bool(0.5) {
        format!("{}？", clauses.choose(rng).copied().unwrap_or(&q))
    } else {
        q.clone()
    };
    let n = rng.random_range(1..=3);
    let mut applied = 0;
    for (a, b) in REWRITES {
        if applied >= n {
            break;
        }
        if body.contains(a) && rng.random_bool(0.7) {
            body = body.replacen(a, b, 1);
            applied += 1;
        }
    }
    let prefix = Q_PREFIX.choose(rng).copied().unwrap_or("");
    format!("{prefix}{body}")
}

fn at(now: DateTime<FixedOffset>, days: i64, h: u32, m: u32) -> DateTime<FixedOffset> {
    let d = now.date_naive() + Duration::days(days);
    let t = NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
    now.offset()
        .from_local_datetime(&d.and_time(t))
        .single()
        .unwrap_or(now)
}

/// A busy reply and the callback time it means, computed independently.
fn busy_time(now: DateTime<FixedOffset>, rng: &mut StdRng) -> (String, DateTime<FixedOffset>) {
    let wd = i64::from(now.weekday().num_days_from_monday());
    let next_monday = 7 - wd;
    let friday = {
        let a = (4 - wd).rem_euclid(7);
        if a == 0 {
            7
        } else {
            a
        }
    };
    let options: Vec<(&str, DateTime<FixedOffset>)> = vec![
        ("明天下午三点", at(now, 1, 15, 0)),
        ("明天上午十点", at(now, 1, 10, 0)),
        ("半小时后", now + Duration::minutes(30)),
        ("一个小时以后", now + Duration::minutes(60)),
        ("下周一上午", at(now, next_monday, 10, 0)),
        ("后天下午两点半", at(now, 2, 14, 30)),
        ("今晚八点", at(now, 0, 20, 0)),
        ("周五下午", at(now, friday, 15, 0)),
        ("明天早上九点", at(now, 1, 9, 0)),
        ("二十分钟后", now + Duration::minutes(20)),
    ];
    let (t, when) = options
        .choose(rng)
        .copied()
        .unwrap_or(("明天下午三点", at(now, 1, 15, 0)));
    (t.to_string(), when)
}

const EMAIL_USERS: &[&str] = &["liwei", "zhangmin", "wangfang88", "chen_jie", "ops2025"];
const EMAIL_DOMAINS: &[(&str, &str)] = &[
    ("example", "com"),
    ("qq", "com"),
    ("163", "com"),
    ("taishan", "cn"),
];

fn email(rng: &mut StdRng) -> (String, String) {
    let u = EMAIL_USERS.choose(rng).copied().unwrap_or("liwei");
    let (d, tld) = EMAIL_DOMAINS
        .choose(rng)
        .copied()
        .unwrap_or(("example", "com"));
    let addr = format!("{u}@{d}.{tld}");
    let spoken = match rng.random_range(0..3) {
        0 => format!("发到{addr}"),
        1 => format!("{u} at {d} dot {tld}"),
        _ => format!("邮箱是{u}艾特{d}点{tld}"),
    };
    (spoken, addr)
}

struct Callee {
    kind: PersonaKind,
    /// Questions: (utterance, expected KB entry or None for open concerns).
    questions: Vec<(String, Option<usize>)>,
    pending_q: Option<Option<usize>>,
    repeats_left: u32,
    silences_left: u32,
    off_topic_left: u32,
    docs_turn: usize,
    hostile_turn: usize,
    email: (String, String),
    callback: (String, DateTime<FixedOffset>),
    said_busy: bool,
    turn: usize,
    last_silent: bool,
}

impl Callee {
    fn new(
        kind: PersonaKind,
        script: &Script,
        now: DateTime<FixedOffset>,
        rng: &mut StdRng,
    ) -> Self {
        let mut questions = Vec::new();
        if !script.kb.is_empty() {
            let n = match kind {
                PersonaKind::Questioner => rng.random_range(1..=3),
                PersonaKind::Distracted | PersonaKind::Cooperative => {
                    usize::from(rng.random_bool(0.3))
                }
                _ => 0,
            };
            for _ in 0..n {
                let i = rng.random_range(0..script.kb.len());
                questions.push((paraphrase(&script.kb[i].question, rng), Some(i)));
            }
        }
        // The callee half: concerns become open questions, reply examples are
        // said as they are (a question, a repeat request, a documents request…).
        if matches!(kind, PersonaKind::Questioner | PersonaKind::Cooperative) {
            if !script.persona.concerns.is_empty() && rng.random_bool(0.3) {
                let c = script
                    .persona
                    .concerns
                    .choose(rng)
                    .cloned()
                    .unwrap_or_default();
                let body = c.split(['：', ':']).next_back().unwrap_or(&c).to_string();
                let phrases: Vec<&str> = body
                    .split(['、', '，', '；', ',', '。'])
                    .map(str::trim)
                    .filter(|p| p.chars().count() >= 3)
                    .collect();
                if let Some(p) = phrases.choose(rng) {
                    questions.push((format!("{p}这块能具体说说吗？"), None));
                }
            }
            if !script.persona.good_examples.is_empty() && rng.random_bool(0.4) {
                let ex = script
                    .persona
                    .good_examples
                    .choose(rng)
                    .cloned()
                    .unwrap_or_default();
                questions.push((ex, None));
            }
        }
        let steps = script.steps.len().max(2);
        Self {
            kind,
            questions,
            pending_q: None,
            repeats_left: if kind == PersonaKind::Distracted {
                rng.random_range(1..=2)
            } else {
                0
            },
            silences_left: if kind == PersonaKind::Distracted {
                1
            } else {
                0
            },
            off_topic_left: if kind == PersonaKind::Distracted {
                1
            } else {
                0
            },
            docs_turn: rng.random_range(1..steps),
            hostile_turn: rng.random_range(0..2),
            email: email(rng),
            callback: busy_time(now, rng),
            said_busy: false,
            turn: 0,
            last_silent: false,
        }
    }

    /// The next utterance (None = silence) given what the agent expects.
    fn reply(&mut self, expecting: Expecting, script: &Script, rng: &mut StdRng) -> Option<String> {
        self.turn += 1;
        self.pending_q = None;
        let was_silent = std::mem::replace(&mut self.last_silent, false);
        let kind = match expecting {
            Expecting::Nothing => return None,
            Expecting::CallbackTime => {
                return Some(format!("{}吧", self.callback.0));
            }
            Expecting::Email => return Some(self.email.0.clone()),
            Expecting::EmailConfirmation => {
                return Some(
                    ["对", "对的", "没错", "是的"]
                        .choose(rng)
                        .copied()
                        .unwrap_or("对")
                        .to_string(),
                )
            }
            Expecting::Step(k) => k,
        };
        match self.kind {
            PersonaKind::Silent => return None,
            PersonaKind::Refuser => {
                return Some(
                    REFUSALS
                        .choose(rng)
                        .copied()
                        .unwrap_or("不需要")
                        .to_string(),
                )
            }
            PersonaKind::Hostile
                if self.turn > self.hostile_turn || kind == StepKind::AnyQuestions =>
            {
                return Some(
                    HOSTILE
                        .choose(rng)
                        .copied()
                        .unwrap_or("别再打了")
                        .to_string(),
                );
            }
            PersonaKind::Busy if !self.said_busy => {
                self.said_busy = true;
                let with_time = rng.random_bool(0.5);
                let base = [
                    "我现在在开会，",
                    "现在不太方便，",
                    "我这会儿正忙，",
                    "在开车呢，",
                ]
                .choose(rng)
                .copied()
                .unwrap_or("");
                return Some(if with_time {
                    format!("{base}你{}再打给我吧", self.callback.0)
                } else {
                    format!("{base}晚点再说吧")
                });
            }
            PersonaKind::EmailSeeker
                if self.turn == self.docs_turn
                    || (kind == StepKind::AnyQuestions && self.turn < self.docs_turn) =>
            {
                self.docs_turn = 0;
                return Some(DOCS.choose(rng).copied().unwrap_or("发我邮箱").to_string());
            }
            PersonaKind::Distracted => {
                if self.repeats_left > 0 && rng.random_bool(0.3) {
                    self.repeats_left -= 1;
                    return Some(REPEATS.choose(rng).copied().unwrap_or("没听清").to_string());
                }
                if self.silences_left > 0 && !was_silent && rng.random_bool(0.2) {
                    self.silences_left -= 1;
                    self.last_silent = true;
                    return None;
                }
                if self.off_topic_left > 0 && rng.random_bool(0.2) {
                    self.off_topic_left -= 1;
                    return Some(
                        OFF_TOPIC
                            .choose(rng)
                            .copied()
                            .unwrap_or("天气不错")
                            .to_string(),
                    );
                }
            }
            _ => {}
        }
        // Questions at statement or any-questions steps.
        if matches!(kind, StepKind::Statement | StepKind::AnyQuestions)
            && !self.questions.is_empty()
            && (kind == StepKind::AnyQuestions || rng.random_bool(0.4))
        {
            let (q, expect) = self.questions.remove(0);
            self.pending_q = Some(expect);
            return Some(q);
        }
        let _ = script;
        Some(
            match kind {
                StepKind::Convenience => CONVENIENT.choose(rng).copied().unwrap_or("方便"),
                StepKind::Statement => {
                    // Listening quietly now and then, but never twice in a row.
                    if !was_silent && rng.random_bool(0.15) {
                        self.last_silent = true;
                        return None;
                    }
                    ACKS.choose(rng).copied().unwrap_or("嗯")
                }
                StepKind::Confirm => ["可以", "好的，没问题", "对", "行"]
                    .choose(rng)
                    .copied()
                    .unwrap_or("可以"),
                StepKind::Feedback => {
                    if rng.random_bool(0.5) {
                        FEEDBACK.choose(rng).copied().unwrap_or("挺好")
                    } else {
                        NO_MORE.choose(rng).copied().unwrap_or("没有")
                    }
                }
                StepKind::SpecialNeed => {
                    if rng.random_bool(0.5) {
                        NEEDS.choose(rng).copied().unwrap_or("有夜班")
                    } else {
                        "没有，正常就行"
                    }
                }
                StepKind::Info => INFOS.choose(rng).copied().unwrap_or("好的"),
                StepKind::AnyQuestions => NO_MORE.choose(rng).copied().unwrap_or("没有了"),
            }
            .to_string(),
        )
    }
}

fn pick_kind(script: &Script, rng: &mut StdRng) -> PersonaKind {
    let beh = script.persona.behaviours.join("");
    let mut weights = vec![
        (PersonaKind::Cooperative, 22u32),
        (
            PersonaKind::Questioner,
            if script.kb.is_empty() { 0 } else { 20 },
        ),
        (PersonaKind::EmailSeeker, 10),
        (PersonaKind::Busy, 12),
        (PersonaKind::Refuser, 8),
        (PersonaKind::Hostile, 6),
        (PersonaKind::Silent, 5),
        (PersonaKind::Distracted, 10),
    ];
    // The callee half shifts the mix: distracted / wants documents.
    for (k, w) in &mut weights {
        if *k == PersonaKind::Distracted
            && ["重复", "走神", "分心", "没听清"]
                .iter()
                .any(|x| beh.contains(x))
        {
            *w += 8;
        }
        if *k == PersonaKind::EmailSeeker
            && ["邮件", "邮箱", "资料", "书面"]
                .iter()
                .any(|x| beh.contains(x))
        {
            *w += 8;
        }
    }
    let total: u32 = weights.iter().map(|x| x.1).sum();
    let mut r = rng.random_range(0..total.max(1));
    for (k, w) in weights {
        if r < w {
            return k;
        }
        r -= w;
    }
    PersonaKind::Cooperative
}

/// Runs `calls` seeded simulated calls against `script`.
pub fn run_simulation(
    script: &Script,
    calls: usize,
    seed: u64,
) -> Result<SimReport, DialogueError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = SimReport::default();
    // Placeholders get sample values so campaign scripts can be simulated.
    let vars: BTreeMap<String, String> = script
        .placeholders
        .iter()
        .map(|p| (p.clone(), format!("测试{p}")))
        .collect();
    let base = DateTime::parse_from_rfc3339("2026-11-25T09:30:00+08:00")
        .map_err(|e| DialogueError::Io(std::io::Error::other(e)))?;
    for index in 0..calls {
        let mut now = base;
        let kind = pick_kind(script, &mut rng);
        let mut callee = Callee::new(kind, script, now, &mut rng);
        let mut conv = Conversation::new(script, &vars, now)?;
        let mut transcript = Vec::new();
        let first = conv.opening(now);
        transcript.extend(first.lines().map(|l| format!("A: {l}")));
        let mut turns = 0;
        while !conv.is_ended() && turns < 80 {
            turns += 1;
            now += Duration::seconds(15);
            let utter = callee
                .reply(conv.expecting(), script, &mut rng)
                .map(|u| asr_noise(&u, &mut rng));
            transcript.push(format!("C: {}", utter.as_deref().unwrap_or("(silence)")));
            let started = Instant::now();
            let r: TurnResult = match &utter {
                Some(u) => conv.on_utterance(u, 0.9, now),
                None => conv.on_silence(now),
            };
            let us = started.elapsed().as_micros();
            report.max_turn_us = report.max_turn_us.max(us);
            report.total_turn_us += us;
            report.turns += 1;
            report.turn_us.push(us);
            if let Some(Some(e)) = callee.pending_q.take() {
                report.kb_questions += 1;
                if r.kb.map(|k| k.0) == Some(e) {
                    report.kb_correct += 1;
                } else if std::env::var_os("SIM_DEBUG").is_some() {
                    eprintln!(
                        "KBMISS want {e} got {:?} intent {:?} step {} :: {:?}",
                        r.kb, r.intent, r.step, utter
                    );
                }
            }
            transcript.extend(r.lines().map(|l| format!("A: {l}")));
        }
        if !conv.is_ended() {
            conv.on_hangup(now);
        }
        let reached = conv.outcome();
        let expected = kind.expected();
        let mut ok = reached == Some(expected);
        let mut note = String::new();
        if !ok {
            note = format!(
                "last: {}",
                transcript
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        if ok && kind == PersonaKind::Busy {
            let want = callee.callback.1.format("%Y-%m-%d %H:%M").to_string();
            let got = conv
                .callback_at()
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string());
            if got.as_deref() != Some(want.as_str()) {
                ok = false;
                note = format!(
                    "callback at {got:?}, expected {want} for \"{}\"",
                    callee.callback.0
                );
            }
        }
        if ok && kind == PersonaKind::EmailSeeker {
            let got = conv.fields().get("email").cloned();
            if got.as_deref() != Some(callee.email.1.as_str()) {
                ok = false;
                note = format!(
                    "email {:?}, expected {} from \"{}\"",
                    got, callee.email.1, callee.email.0
                );
            }
        }
        if ok {
            report.reached += 1;
        }
        report.calls.push(SimCall {
            index: index + 1,
            persona: kind.name(),
            expected,
            reached,
            ok,
            note,
            turns,
            transcript,
        });
    }
    Ok(report)
}
