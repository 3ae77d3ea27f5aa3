//! Conversation engine behaviour: every reply class with several phrasings
//! (including ASR-style homophones and missing punctuation), callback-time
//! parsing, e-mail capture, silence handling, format tolerance of the script
//! loader, fixed lines and per-line barge-in flags. Turn-handling time is
//! printed, never asserted.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use tingshuo::dialogue::demo::{INBOUND, OUTBOUND};
use tingshuo::dialogue::timeparse::parse_callback_time;
use tingshuo::dialogue::{Action, Conversation, DialogueError, Outcome, Script, StepKind};

fn now() -> DateTime<FixedOffset> {
    // A Wednesday morning, Beijing time.
    DateTime::parse_from_rfc3339("2026-11-25T10:20:00+08:00").unwrap()
}

fn outbound() -> Script {
    Script::parse(OUTBOUND, "outbound").unwrap()
}

/// A conversation on the outbound demo, opened.
fn started() -> Conversation {
    let mut c = Conversation::new(&outbound(), &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    c
}

/// A conversation moved to step `n` (1-based) by plain acknowledgements.
fn at_step(n: &str) -> Conversation {
    let mut c = started();
    for _ in 0..10 {
        if c.current_step() == n {
            return c;
        }
        c.on_utterance("好的", 1.0, now());
    }
    panic!("never reached step {n}");
}

fn said(r: &tingshuo::dialogue::TurnResult) -> String {
    r.lines().collect::<Vec<_>>().join("")
}

#[test]
fn agree_moves_on() {
    for p in ["方便，你说", "嗯可以", "是我请讲", "行说吧", "嗯嗯您说"] {
        let mut c = started();
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.step, "2", "{p}");
        assert!(said(&r).contains("2026年11月28日"), "{p}");
    }
}

#[test]
fn decline_closes_as_declined() {
    for p in [
        "不需要谢谢",
        "没兴趣",
        "不感兴趣别说了",
        "不用了我不需要",
        "不想听",
    ] {
        let mut c = started();
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.outcome(), Some(Outcome::Declined), "{p}");
    }
}

#[test]
fn not_convenient_offers_callback_and_captures_time() {
    for p in [
        "我在开会",
        "现在不方便",
        "开车呢晚点打",
        "正忙着呢",
        "不太方便",
        "现在不方变",
    ] {
        let mut c = started();
        let r = c.on_utterance(p, 1.0, now());
        assert!(said(&r).contains("方便的时间"), "{p}: {}", said(&r));
        let r = c.on_utterance("明天下午三点吧", 1.0, now());
        assert_eq!(r.outcome(), Some(Outcome::CallbackScheduled), "{p}");
        assert_eq!(
            c.callback_at().unwrap().to_rfc3339(),
            "2026-11-26T15:00:00+08:00"
        );
        assert!(r
            .actions
            .iter()
            .any(|a| matches!(a, Action::ScheduleCallback { .. })));
    }
    // Time given with the refusal: scheduled at once.
    for (p, want) in [
        ("在开会明天上午十点再打给我", "2026-11-26T10:00:00+08:00"),
        ("我现在没空你半小时后打过来", "2026-11-25T10:50:00+08:00"),
        ("不方便下周一上午再联系吧", "2026-11-30T10:00:00+08:00"),
    ] {
        let mut c = started();
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.outcome(), Some(Outcome::CallbackScheduled), "{p}");
        assert_eq!(c.callback_at().unwrap().to_rfc3339(), want, "{p}");
    }
}

#[test]
fn repeat_then_rephrase() {
    for p in [
        "没听清",
        "你说什么",
        "再说一遍",
        "在说一边",
        "不好意思刚走神了能重复一下吗",
    ] {
        let mut c = at_step("2");
        let step2 = outbound().steps[1].lines[0].clone();
        let r = c.on_utterance(p, 1.0, now());
        assert!(
            said(&r).contains(&step2),
            "{p}: first repeat says the line again"
        );
        let r = c.on_utterance(p, 1.0, now());
        let second = said(&r);
        assert!(second.starts_with("我换个说法"), "{p}: {second}");
        assert_ne!(
            second,
            format!("我换个说法。{step2}"),
            "{p}: second repeat is reworded"
        );
        assert_eq!(c.current_step(), "2");
    }
}

#[test]
fn questions_are_answered_from_the_kb_then_the_call_goes_on() {
    let script = outbound();
    for (p, entry) in [
        ("装宽带要收钱吗", 0),
        ("师傅来之前会先打电话吧", 2),
        ("要在墙上打洞吗", 5),
    ] {
        let mut c = at_step("2");
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.kb.map(|k| k.0), Some(entry), "{p}");
        assert!(said(&r).contains(&script.kb[entry].answer), "{p}");
        assert_eq!(
            r.step, "3",
            "{p}: a statement step moves on after the answer"
        );
    }
}

#[test]
fn unknown_questions_get_the_holding_answer_and_are_recorded() {
    for p in [
        "你们公司一共有多少员工",
        "你们老板是谁啊",
        "光纤是哪个厂家生产的呢",
    ] {
        let mut c = at_step("2");
        let r = c.on_utterance(p, 1.0, now());
        assert!(
            said(&r).contains("暂时没法给您准确答复"),
            "{p}: {}",
            said(&r)
        );
        assert_eq!(
            c.fields().get("open_questions").map(String::as_str),
            Some(p)
        );
    }
}

#[test]
fn documents_by_email_spoken_or_written() {
    for (p, addr, want) in [
        (
            "把安装说明发我邮箱吧",
            "wangfang at example dot com",
            "wangfang@example.com",
        ),
        (
            "资料发我油箱",
            "邮箱是chen_jie艾特163点com",
            "chen_jie@163.com",
        ),
        ("书面的发我一份", "ops2025@taishan.cn", "ops2025@taishan.cn"),
    ] {
        let mut c = at_step("3");
        let r = c.on_utterance(p, 1.0, now());
        assert!(said(&r).contains("哪个邮箱"), "{p}: {}", said(&r));
        let r = c.on_utterance(addr, 1.0, now());
        assert!(said(&r).contains(want), "{p}: confirm {}", said(&r));
        c.on_utterance("对的", 1.0, now());
        assert_eq!(c.fields().get("email").map(String::as_str), Some(want));
        assert!(c.fields().contains_key("documents_requested"));
        assert_eq!(c.current_step(), "4", "{p}: back to the flow");
    }
    // Address in the request itself, corrected once.
    let mut c = at_step("3");
    c.on_utterance("发到call at xbench dot com", 1.0, now());
    c.on_utterance("不对", 1.0, now());
    c.on_utterance("call at xbench dot cn", 1.0, now());
    c.on_utterance("对", 1.0, now());
    assert_eq!(
        c.fields().get("email").map(String::as_str),
        Some("call@xbench.cn")
    );
}

#[test]
fn special_needs_are_recorded() {
    for p in [
        "家里有老人腿脚不方便",
        "小区进门要登记",
        "希望师傅下午来",
        "我们晚上有夜班",
    ] {
        let mut c = at_step("4");
        assert_eq!(c.script().steps[3].kind, StepKind::SpecialNeed);
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(
            c.fields().get("special_need").map(String::as_str),
            Some(p),
            "{p}"
        );
        assert_eq!(r.step, "5", "{p}");
    }
    // Mentioned at another step: recorded too.
    let mut c = at_step("3");
    c.on_utterance("对了我们那边三班倒", 1.0, now());
    assert!(c.fields().contains_key("special_need"));
}

#[test]
fn feedback_is_recorded_verbatim() {
    for p in [
        "希望以后能提前一周通知",
        "整体挺好就是电话来得有点早",
        "建议短信里写清楚师傅的工号",
    ] {
        let mut c = at_step("6");
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(c.fields().get("feedback").map(String::as_str), Some(p));
        assert_eq!(r.outcome(), Some(Outcome::Completed), "{p}");
    }
    let mut c = at_step("6");
    c.on_utterance("没有了", 1.0, now());
    assert_eq!(c.fields().get("feedback").map(String::as_str), Some("无"));
    assert_eq!(c.outcome(), Some(Outcome::Completed));
}

#[test]
fn silence_reprompts_twice_then_closes() {
    let mut c = started();
    let r1 = c.on_silence(now());
    assert!(said(&r1).contains("还在听"));
    let r2 = c.on_silence(now());
    assert!(said(&r2).contains("能听到"));
    let r3 = c.on_silence(now());
    assert_eq!(r3.outcome(), Some(Outcome::NoResponse));
    // Silence after a statement means listening: the call goes on.
    let mut c = at_step("2");
    let r = c.on_silence(now());
    assert_eq!(r.step, "3");
    // An utterance resets the count.
    let mut c = started();
    c.on_silence(now());
    c.on_silence(now());
    let r = c.on_utterance("嗯你说", 1.0, now());
    assert_eq!(r.step, "2");
}

#[test]
fn hostile_closes_with_do_not_call() {
    for p in [
        "别再给我打电话了",
        "再打我就投诉你们",
        "以后别打了行吗",
        "把我号码删掉，别联系我了",
    ] {
        let mut c = at_step("3");
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.outcome(), Some(Outcome::DoNotCall), "{p}");
        assert!(said(&r).contains("抱歉"));
        assert_eq!(
            c.fields().get("do_not_call").map(String::as_str),
            Some("true")
        );
    }
    // Annoyance, suspicion and complaints are not do-not-call requests (issue 14).
    for p in ["你们烦不烦啊", "骗子吧你", "我要投诉你们", "神经病"] {
        let mut c = at_step("3");
        c.on_utterance(p, 1.0, now());
        assert!(!c.fields().contains_key("do_not_call"), "{p}");
    }
    // "回滚" is not an insult.
    let mut c = at_step("3");
    let r = c.on_utterance("回滚方案能发我邮箱吗", 1.0, now());
    assert_ne!(r.outcome(), Some(Outcome::DoNotCall));
}

#[test]
fn off_topic_is_steered_back() {
    for p in ["今天天气真好啊", "你吃饭了吗", "哈哈哈给我讲个笑话"] {
        let mut c = at_step("4");
        let r = c.on_utterance(p, 1.0, now());
        assert!(said(&r).contains("说回正题"), "{p}");
        assert_eq!(r.step, "4", "{p}");
    }
}

#[test]
fn hold_waits_on_the_same_step() {
    for p in ["稍等一下", "你等一下我换个地方", "等下啊别挂"] {
        let mut c = at_step("2");
        let r = c.on_utterance(p, 1.0, now());
        assert!(said(&r).contains("我等您"), "{p}: {}", said(&r));
        assert_eq!(r.step, "2");
        let r = c.on_silence(now());
        assert!(
            said(&r).contains("还在听"),
            "{p}: silence after hold re-prompts"
        );
        let r = c.on_utterance("好了你说吧", 1.0, now());
        assert_eq!(r.step, "3");
    }
}

#[test]
fn line_checks_count_as_repeat_requests() {
    for p in ["喂喂听得到吗", "刚才说几点来着", "能听到吗"] {
        let mut c = at_step("2");
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.step, "2", "{p}");
        assert!(said(&r).contains("我再说一遍"), "{p}: {}", said(&r));
    }
}

#[test]
fn wrong_person_and_identity() {
    for p in ["你打错了", "不是，你找错人了"] {
        let mut c = started();
        let r = c.on_utterance(p, 1.0, now());
        assert_eq!(r.outcome(), Some(Outcome::Declined), "{p}");
        assert_eq!(
            c.fields().get("reason").map(String::as_str),
            Some("wrong_person")
        );
    }
    let mut c = at_step("2");
    let r = c.on_utterance("你是机器人吗", 1.0, now());
    assert!(said(&r).contains("智能语音助手"));
}

#[test]
fn low_asr_confidence_asks_again() {
    let mut c = at_step("2");
    let r = c.on_utterance("那个光什么的怎么弄", 0.2, now());
    assert!(said(&r).contains("没听清楚"));
    assert_eq!(r.step, "2");
}

#[test]
fn full_call_completes_with_record() {
    let mut c = started();
    for u in ["方便你说", "好", "嗯知道了", "没有特别的", "明白", "没意见"] {
        c.on_utterance(u, 1.0, now());
    }
    assert_eq!(c.outcome(), Some(Outcome::Completed));
    let s = c.summary();
    assert_eq!(s.steps.first().map(String::as_str), Some("opening"));
    assert_eq!(s.steps.last().map(String::as_str), Some("closing"));
}

#[test]
fn inbound_hotline_answers_then_collects() {
    let script = Script::parse(INBOUND, "inbound").unwrap();
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    let r = c.opening(now());
    assert!(said(&r).contains("有什么可以帮您"));
    let r = c.on_utterance("家里网断了孩子要上网课怎么弄", 1.0, now());
    assert_eq!(r.kb.map(|k| k.0), Some(0));
    assert!(said(&r).contains("其他问题"));
    let r = c.on_utterance("wifi密码怎么改", 1.0, now());
    assert_eq!(r.kb.map(|k| k.0), Some(5));
    let r = c.on_utterance("没有了", 1.0, now());
    assert!(said(&r).contains("账号"));
    c.on_utterance("手机号一三九零零零零一二三四", 1.0, now());
    let r = c.on_utterance("挺满意的", 1.0, now());
    assert_eq!(r.outcome(), Some(Outcome::Completed));
    assert!(c.fields().contains_key("登记联系方式"));
    assert!(c.fields().contains_key("feedback"));
}

const VARIANT: &str = r#"
# 社区体检通知

## AI外呼方

### 角色：
康宁社区医院随访护士小林

### 任务
通知{{name}}参加{{date}}的免费体检

### 流程
#### 第一步 问候（确认身份）
『{{name}}您好，我是康宁社区医院的小林，请问现在说话方便吗？』
如果对方在忙：『那我换个时间再打给您。』
#### 第二步 法律声明（不可打断）
『本通话会被录音，仅用于服务质量改进。』
#### 第三步 通知时间
体检安排在2026-12-05上午八点，请空腹前来。
#### 第四步 收集意见
『您对这次体检安排有什么建议吗？』

### 常见问题
问：体检要钱吗？ 答：这次体检完全免费。
**Q2：需要带什么？**
A2："请带上身份证和医保卡。"

### 结束
**结束条件：**对方知道体检时间
**结束语：**
"祝您身体健康，再见。"
"有问题请拨打社区医院电话。"
"#;

#[test]
fn loader_tolerates_format_variants() {
    let s = Script::parse(VARIANT, "variant").unwrap();
    assert_eq!(s.steps.len(), 4);
    assert_eq!(s.steps[0].kind, StepKind::Convenience);
    assert_eq!(s.steps[0].conditionals.len(), 1);
    assert!(
        !s.steps[1].interruptible,
        "法律声明 / 不可打断 steps forbid barge-in"
    );
    assert!(s.steps[0].interruptible);
    assert_eq!(
        s.steps[2].lines[0],
        "体检安排在2026-12-05上午八点，请空腹前来。"
    );
    assert_eq!(s.steps[3].kind, StepKind::Feedback);
    assert_eq!(s.kb.len(), 2);
    assert_eq!(s.kb[0].answer, "这次体检完全免费。");
    assert_eq!(s.kb[1].answer, "请带上身份证和医保卡。");
    assert_eq!(s.closing.len(), 2);
    assert_eq!(s.end_conditions.len(), 1);
    assert_eq!(s.dates.len(), 1);
    assert!(s.placeholders.contains("name") && s.placeholders.contains("date"));
    // Missing sections are warnings, not errors.
    assert!(s.warnings.iter().any(|w| w.contains("开场白")));
    assert!(s.warnings.iter().any(|w| w.contains("电话接听方")));
    // Placeholders: a missing value is an error naming it; given values are filled.
    let err = Conversation::new(&s, &BTreeMap::new(), now())
        .err()
        .unwrap();
    assert!(matches!(err, DialogueError::MissingVars { .. }));
    assert!(err.to_string().contains("{{date}}") && err.to_string().contains("--var"));
    let vars: BTreeMap<String, String> = [("name", "赵敏"), ("date", "12月5日")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut c = Conversation::new(&s, &vars, now()).unwrap();
    let r = c.opening(now());
    assert!(said(&r).starts_with("赵敏您好"));
    let r = c.on_utterance("方便", 1.0, now());
    assert!(r
        .actions
        .iter()
        .any(|a| matches!(a, Action::Say { interruptible: false, step: Some(s), .. } if s == "2")));
    assert!(c
        .all_fixed_lines()
        .iter()
        .any(|l| !l.interruptible && l.text.contains("录音")));
}

#[test]
fn loader_errors_name_the_line() {
    let doc = "# 标题\n\n### 角色\n客服\n\n### 分步流程和话术\n这里忘了写步骤\n";
    let err = Script::parse(doc, "broken.md").err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("broken.md") && msg.contains("line 6"), "{msg}");
    let err = Script::parse("随便写点什么", "empty.md").err().unwrap();
    assert!(err.to_string().contains("line 1"));
}

#[test]
fn callee_name_and_honorific_from_the_profile() {
    let s = outbound();
    assert_eq!(s.callee_name.as_deref(), Some("陈建国"));
    assert_eq!(s.honorific.as_deref(), Some("陈先生"));
}

#[test]
fn fixed_lines_cover_the_script() {
    let c = started();
    let lines = c.all_fixed_lines();
    let s = outbound();
    for step in &s.steps {
        for l in &step.lines {
            assert!(lines.iter().any(|f| &f.text == l));
        }
    }
    for q in &s.kb {
        assert!(lines.iter().any(|f| f.text == q.answer));
    }
    assert!(lines.iter().any(|f| f.text == s.opening));
}

/// (expression, expected local time) relative to Wednesday 2026-11-25 10:20.
const TIMES: &[(&str, &str)] = &[
    ("明天下午三点", "2026-11-26 15:00"),
    ("下周一上午", "2026-11-30 10:00"),
    ("半小时后", "2026-11-25 10:50"),
    ("今晚八点半", "2026-11-25 20:30"),
    ("周五", "2026-11-27 10:00"),
    ("后天上午十点", "2026-11-27 10:00"),
    ("一个小时以后", "2026-11-25 11:20"),
    ("两个小时后", "2026-11-25 12:20"),
    ("二十分钟之后", "2026-11-25 10:40"),
    ("一刻钟后", "2026-11-25 10:35"),
    ("下午四点", "2026-11-25 16:00"),
    ("明天早上九点", "2026-11-26 09:00"),
    ("明天中午十二点", "2026-11-26 12:00"),
    ("下周三下午两点", "2026-12-02 14:00"),
    ("星期六上午", "2026-11-28 10:00"),
    ("礼拜天晚上", "2026-11-29 20:00"),
    ("12月3号下午", "2026-12-03 15:00"),
    ("明天下午3点15分", "2026-11-26 15:15"),
    ("三点吧", "2026-11-25 15:00"),
    ("晚上七点", "2026-11-25 19:00"),
    ("明晚", "2026-11-26 20:00"),
    ("一个半小时后", "2026-11-25 11:50"),
    ("大后天", "2026-11-28 10:00"),
    ("这周五下午", "2026-11-27 15:00"),
    ("11点半", "2026-11-25 11:30"),
    ("明天下午两点到三点之间", "2026-11-26 14:00"),
    ("十分钟后", "2026-11-25 10:30"),
    ("下个星期二上午十点", "2026-12-01 10:00"),
    ("傍晚", "2026-11-25 18:00"),
    ("明天下午", "2026-11-26 15:00"),
];

#[test]
fn callback_time_expressions() {
    let mut bad = Vec::new();
    for (expr, want) in TIMES {
        let got =
            parse_callback_time(expr, now()).map(|t| t.at.format("%Y-%m-%d %H:%M").to_string());
        if got.as_deref() != Some(*want) {
            bad.push(format!("{expr}: got {got:?}, want {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(TIMES.len() >= 20);
    // Vague answers get a default and say so.
    let t = parse_callback_time("待会儿吧", now()).unwrap();
    assert!(!t.exact);
    assert!(parse_callback_time("好的没问题", now()).is_none());
}

#[test]
fn turn_handling_time_report() {
    let mut c = started();
    // Warm-up: lazy tables.
    c.on_utterance("嗯", 1.0, now());
    let utterances = [
        "好的",
        "装宽带要收钱吗",
        "没听清",
        "我们晚上有夜班",
        "资料发我邮箱",
        "wangfang at example dot com",
        "对",
        "今天天气真好",
        "嗯",
    ];
    // Per utterance: the fastest of 20 runs is the intrinsic cost; the mean
    // includes whatever else the (shared, 2-core) machine is doing.
    let mut best = vec![u128::MAX; utterances.len()];
    let mut total = 0u128;
    let mut n = 0u128;
    for _ in 0..20 {
        let mut c = started();
        for (i, u) in utterances.iter().enumerate() {
            let t = Instant::now();
            c.on_utterance(u, 1.0, now());
            let us = t.elapsed().as_micros();
            best[i] = best[i].min(us);
            total += us;
            n += 1;
        }
    }
    let worst_best = best.iter().copied().max().unwrap_or(0);
    println!(
        "turn handling (incl. KB retrieval, debug build): mean {} µs over {n} turns; slowest utterance's best run {worst_best} µs; per utterance {:?}",
        total / n,
        best
    );
}

#[test]
fn transfer_requests_follow_the_configuration() {
    use tingshuo::dialogue::{TransferReason, TransferResult};
    // No target configured: a person calls back, the call ends as such.
    let mut c = at_step("3");
    let r = c.on_utterance("我要转人工", 1.0, now());
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::ScheduleCallback {
            by_person: true,
            ..
        }
    )));
    assert_eq!(r.outcome(), Some(Outcome::CallbackScheduled));
    // A target configured: the driver is asked to transfer, and its result ends the call.
    let mut c = at_step("3");
    c.set_transfer(true, 2);
    let r = c.on_utterance("给我找个真人客服", 1.0, now());
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::Transfer {
            reason: TransferReason::CallerAsked,
            ..
        }
    )));
    assert!(r.outcome().is_none());
    c.on_transfer_result(
        now(),
        TransferResult::Connected {
            target: "sip:2000@127.0.0.1".into(),
        },
    );
    assert_eq!(c.outcome(), Some(Outcome::Transferred));
    // A failed transfer: the caller hears so and a person's callback is booked.
    let mut c = at_step("3");
    c.set_transfer(true, 2);
    c.on_utterance("转人工", 1.0, now());
    let r = c.on_transfer_result(now(), TransferResult::Failed { why: "busy".into() });
    assert!(said(&r).contains("无法接通"));
    assert_eq!(r.outcome(), Some(Outcome::CallbackScheduled));
}

#[test]
fn two_misunderstandings_offer_a_person() {
    use tingshuo::dialogue::TransferReason;
    let mut c = at_step("3");
    c.set_transfer(true, 2);
    c.on_utterance("你们那个量子纠缠的专利是哪年申请的？", 1.0, now());
    let r = c.on_utterance("那你们董事会今年换届了吗？", 1.0, now());
    assert!(said(&r).contains("转接人工"), "{}", said(&r));
    let r = c.on_utterance("好的", 1.0, now());
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::Transfer {
            reason: TransferReason::NotUnderstood,
            ..
        }
    )));
    // Off (0): no offer, ever.
    let mut c = at_step("3");
    c.set_transfer(true, 0);
    c.on_utterance("你们那个量子纠缠的专利是哪年申请的？", 1.0, now());
    let r = c.on_utterance("那你们董事会今年换届了吗？", 1.0, now());
    assert!(!said(&r).contains("转接人工"));
}

/// Role and task written as bold labels inside a group section are read, and a
/// value read out for a yes/no is a confirmation whatever its title says.
#[test]
fn bold_labels_and_read_out_values() {
    let doc = "# 测试热线\n\n## 一、坐席设定\n\n**角色：** 测试公司的客服小测。\n\n**核心任务**：核对上门地址。\n\n## 二、服务流程\n\n一、核对地址\n话术：“上门地址是{{地址}}，对吗？”\n\n二、结束\n话术：“好的，再见。”\n";
    let s = Script::parse(doc, "labels").unwrap();
    assert_eq!(s.role, "测试公司的客服小测。");
    assert_eq!(s.task, "核对上门地址。");
    assert_eq!(s.steps[0].kind, StepKind::Confirm);
}

/// A short outbound script whose last steps take a time and a phone number.
const LATE_SCRIPT: &str = "\
净化器滤芯上门更换 外呼话术

一、角色
清源净化器的客服小周，给到期的用户打电话，约滤芯上门更换时间。

二、开场白
\"您好，请问是{{姓名}}吗？我是清源净化器客服小周，您家的滤芯快到更换时间了，现在方便吗？\"

三、通话步骤
（1）约时间
\"师傅哪天什么时候上门比较方便？\"

（2）留电话
\"师傅上门前打哪个电话联系您？\"

（3）结束
\"好的，都登记好了，师傅会按时上门。\"

四、常见问答
Q1：换滤芯要多少钱？
A1：年度套餐内的滤芯免费更换，套餐外每支八十元。

五、结束语
\"感谢您的接听，再见！\"
";

/// A conversation on [`LATE_SCRIPT`] taken to its goodbye.
fn closed_call() -> Conversation {
    let script = Script::parse(LATE_SCRIPT, "late").unwrap();
    let vars = BTreeMap::from([("姓名".to_string(), "孙丽".to_string())]);
    let mut c = Conversation::new(&script, &vars, now()).unwrap();
    c.opening(now());
    for reply in ["方便，你说", "明天上午九点", "13911112222"] {
        c.on_utterance(reply, 1.0, now());
    }
    assert!(c.is_ended(), "the script should have closed");
    assert_eq!(c.outcome(), Some(Outcome::Completed));
    c
}

#[test]
fn after_the_goodbye_a_corrected_value_is_taken_once() {
    // The phone number corrected after the goodbye, before the caller hangs up.
    let mut c = closed_call();
    assert!(c.listens_after_goodbye());
    let r = c.on_utterance("哎等一下，电话说错了，最后四位是2223", 1.0, now());
    assert_eq!(
        c.fields().get("留电话").map(String::as_str),
        Some("13911112223"),
        "{:?}",
        c.fields()
    );
    assert!(said(&r).contains("再见"), "{}", said(&r));
    assert!(r.actions.iter().any(|a| matches!(a, Action::HangUp { .. })));
    // Only one late turn: then the call is over.
    assert!(!c.listens_after_goodbye());
    assert!(c.on_utterance("还有一件事", 1.0, now()).actions.is_empty());

    // A changed time after the goodbye.
    let mut c = closed_call();
    c.on_utterance("哦不行，明天上午有事，改成后天下午三点吧", 1.0, now());
    let fields = c.fields().values().cloned().collect::<Vec<_>>().join(" ");
    assert!(fields.contains("2026-11-27T15:00"), "{fields}");

    // A goodbye back, or thanks, adds nothing and ends the call as it was.
    for bye in ["好的再见", "谢谢你啊", "嗯嗯"] {
        let mut c = closed_call();
        let r = c.on_utterance(bye, 1.0, now());
        assert!(r.actions.is_empty(), "{bye}: {:?}", r.actions);
        assert!(!c.listens_after_goodbye());
        assert_eq!(c.outcome(), Some(Outcome::Completed));
    }
}

#[test]
fn after_the_goodbye_whatever_the_caller_adds_gets_a_reply() {
    // A value no step was waiting for: kept, acknowledged, then the goodbye.
    let mut c = closed_call();
    let r = c.on_utterance("对了，我家门禁密码是一二三四井号", 1.0, now());
    let fields = c.fields().values().cloned().collect::<Vec<_>>().join(" ");
    assert!(fields.contains("门禁"), "{fields}");
    assert!(said(&r).contains("记下"), "{}", said(&r));
    assert!(said(&r).contains("再见"), "{}", said(&r));
    assert!(r.actions.iter().any(|a| matches!(a, Action::HangUp { .. })));
    assert_eq!(c.outcome(), Some(Outcome::Completed));

    // A question the Q&A answers, and one it does not: never a silent hang-up.
    let mut c = closed_call();
    let r = c.on_utterance("哦对了，换滤芯要花钱吗？", 1.0, now());
    assert!(said(&r).contains("八十元"), "{}", said(&r));
    let mut c = closed_call();
    let r = c.on_utterance("师傅来的时候要我准备什么吗？", 1.0, now());
    assert!(said(&r).contains("记录"), "{}", said(&r));
    let open = c
        .fields()
        .get("open_questions")
        .cloned()
        .unwrap_or_default();
    assert!(open.contains("准备"), "{:?}", c.fields());

    // A do-not-call request after the goodbye is honoured.
    let mut c = closed_call();
    let r = c.on_utterance("还有，以后这种电话别再给我打了", 1.0, now());
    assert_eq!(c.outcome(), Some(Outcome::DoNotCall));
    assert!(r.actions.iter().any(|a| matches!(
        a,
        Action::HangUp {
            outcome: Outcome::DoNotCall
        }
    )));

    // A danger to life: whom to call, before the goodbye.
    let mut c = closed_call();
    let r = c.on_utterance("哎呀我闻到厨房里一股煤气味", 1.0, now());
    assert!(said(&r).contains("燃气"), "{}", said(&r));
    assert!(c.fields().contains_key("urgent"), "{:?}", c.fields());
}

#[test]
fn a_call_closed_any_other_way_takes_no_late_turn() {
    let mut c = started();
    c.on_utterance("别再给我打电话了", 1.0, now());
    assert!(c.is_ended());
    assert!(!c.listens_after_goodbye());
    assert!(c
        .on_utterance("电话说错了，是13911112223", 1.0, now())
        .actions
        .is_empty());
}

const CAKE_ORDER: &str = r#"
# 甜心烘焙订蛋糕热线

## AI客服

### 角色
甜心烘焙的订蛋糕客服小甜

### 开场白
您好，甜心烘焙订蛋糕热线，我是小甜，请问您想订一个什么样的蛋糕？

### 流程
#### 第一步 了解要订的蛋糕款式
请您说一下想要的蛋糕款式和尺寸。
#### 第二步 取货电话
请留一个联系电话，蛋糕做好了我们通知您。
#### 第三步 取货时间
您打算哪天、几点来取？

### 结束语
好的，蛋糕给您订好了，再见。
"#;

#[test]
fn an_opening_asking_the_first_steps_question_takes_the_answer() {
    let s = Script::parse(CAKE_ORDER, "cake").unwrap();
    let mut c = Conversation::new(&s, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("我要一个八寸的芒果奶油蛋糕，写生日快乐", 1.0, now());
    assert!(said(&r).contains("联系电话"), "{}", said(&r));
    assert!(c.fields().values().any(|v| v.contains("芒果奶油蛋糕")));
}

const HELD_SLOT: &str = r#"
# 家电清洗预约回访

## AI外呼方

### 开场白
您好，请问是王先生吗？我是洁净家电清洗的客服小洁。

### 流程
#### 第一步 确认上门时间
我们给您约在这周六下午两点上门清洗油烟机，师傅每天上午九点到晚上六点都能上门，您看这个时间可以吗？
记录：上门时间
#### 第二步 结束
好的，到时候师傅会提前联系您。

### 结束语
祝您生活愉快，再见。
"#;

#[test]
fn a_yes_to_a_proposed_time_records_that_time() {
    let s = Script::parse(HELD_SLOT, "held").unwrap();
    for (reply, want) in [
        ("可以", "2026-11-28T14:00"),
        ("周六下午两点没问题", "2026-11-28T14:00"),
        ("周日上午十点吧", "2026-11-29T10:00"),
    ] {
        let mut c = Conversation::new(&s, &BTreeMap::new(), now()).unwrap();
        c.opening(now());
        c.on_utterance("是我", 1.0, now());
        c.on_utterance(reply, 1.0, now());
        assert!(
            c.fields().values().any(|v| v.starts_with(want)),
            "{reply}: {:?}",
            c.fields()
        );
    }
}

/// The turn-latency bench plays its callers' turns one after another; a call the
/// agent closes before the last turn leaves that turn spoken into a goodbye, and
/// the bench counts it as missed. Each bench call must end on its last turn.
#[test]
fn every_bench_call_ends_on_its_last_turn() {
    let corpus = include_str!("../benches/corpus/turns.txt");
    let script = Script::parse(INBOUND, "inbound").unwrap();
    let mut calls: Vec<(String, Vec<String>)> = Vec::new();
    for line in corpus.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("[call ") {
            calls.push((name.trim_end_matches(']').to_string(), Vec::new()));
        } else if let Some((_, text)) = line.split_once(' ').filter(|_| !line.starts_with('#')) {
            if let Some(call) = calls.last_mut() {
                call.1.push(text.to_string());
            }
        }
    }
    assert!(calls.len() >= 8, "{} calls read", calls.len());
    for (name, turns) in &calls {
        let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
        c.opening(now());
        for (i, t) in turns.iter().enumerate() {
            assert!(!c.is_ended(), "call {name}: closed before turn {i} ({t})");
            c.on_utterance(t, 1.0, now());
        }
        assert!(c.is_ended(), "call {name}: still open after its last turn");
    }
}

/// An outbound confirmation whose second step proposes a slot.
const SLOT_SCRIPT: &str = "\
空调清洗上门确认 外呼话术

一、角色
洁风家电清洗的客服小洁，给预约了空调清洗的用户打电话确认上门。

二、开场白
\"您好，请问是{{姓名}}吗？我是洁风家电清洗的小洁，跟您确认一下空调清洗上门的事，现在方便吗？\"

三、通话步骤
（1）确认上门时间
\"师傅定在后天上午九点到十一点上门，这个时间可以吗？\"

（2）核对地址
\"请问上门地址是哪里？说到小区和门牌号。\"

（3）结束
\"好的，都登记好了，师傅出发前会给您打电话。\"

四、结束语
\"感谢您的接听，再见！\"
";

#[test]
fn a_yes_with_the_proposed_slot_said_back_confirms_both() {
    let script = Script::parse(SLOT_SCRIPT, "slot").unwrap();
    let vars = BTreeMap::from([("姓名".to_string(), "钱芳".to_string())]);
    for reply in [
        "是我，后天上午九点到十一点没问题，我在家",
        "对是我，后天上午可以的",
    ] {
        let mut c = Conversation::new(&script, &vars, now()).unwrap();
        c.opening(now());
        let r = c.on_utterance(reply, 1.0, now());
        assert!(said(&r).contains("地址"), "{reply}: {}", said(&r));
        let fields = c.fields().values().cloned().collect::<Vec<_>>().join(" ");
        assert!(fields.contains("2026-11-27T09:00"), "{reply}: {fields}");
    }
    // Another day said with the yes moves the slot; the call goes on.
    let mut c = Conversation::new(&script, &vars, now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("是我，后天不行，周六上午可以", 1.0, now());
    assert!(said(&r).contains("改为"), "{}", said(&r));
    assert!(said(&r).contains("地址"), "{}", said(&r));
    let fields = c.fields().values().cloned().collect::<Vec<_>>().join(" ");
    assert!(fields.contains("2026-11-28"), "{fields}");
    assert_eq!(c.callback_at(), None);
    // A time to be called back at is still a callback.
    let mut c = Conversation::new(&script, &vars, now()).unwrap();
    c.opening(now());
    c.on_utterance("是我，不过我在开会，周六上午再打给我吧", 1.0, now());
    assert!(c.callback_at().is_some(), "{:?}", c.fields());
}

/// An inbound line whose second step is a yes/no the caller may answer early.
const TRADE_IN_SCRIPT: &str = "\
# 好邻居旧家具回收热线（呼入）

## 客服坐席

#### 角色
好邻居回收热线的客服小邻，接听想卖旧家具的来电。

#### 分步流程和话术

**第1步：了解回收物品**
- \"请问您要回收什么家具？\"

**第2步：核对会员**
- \"请问您是我们的老会员吗？是的话报一下会员号。\"

**第3步：上门地址**
- \"师傅上门的地址是哪里？\"

#### 开场白
\"您好，好邻居旧家具回收热线，请问您要回收什么家具？\"

#### 结束
**结束语：** \"感谢来电，再见。\"
";

#[test]
fn a_no_to_a_later_yes_no_step_said_with_the_need_skips_it() {
    let script = Script::parse(TRADE_IN_SCRIPT, "trade").unwrap();
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("一个旧衣柜，不是老会员", 1.0, now());
    assert!(said(&r).contains("地址"), "{}", said(&r));
    assert!(!said(&r).contains("会员"), "{}", said(&r));
    // A denial of something else ("不是我的") answers nothing the step asks.
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("一个旧衣柜，不是我的，是我妈的", 1.0, now());
    assert!(said(&r).contains("会员"), "{}", said(&r));
    // Without the denial the step is asked.
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("一个旧衣柜", 1.0, now());
    assert!(said(&r).contains("会员"), "{}", said(&r));
}

/// An inbound line that asks for the trouble but first checks for danger.
const TRIAGE_SCRIPT: &str = "\
# 安居燃气热水器报修热线（呼入）

## 客服坐席

#### 角色
安居热水器售后热线的客服小安，接听热水器报修电话。

#### 分步流程和话术

**第1步：安全确认**
- \"请问现在家里有没有闻到燃气味？\"

**第2步：了解故障**
- \"热水器是什么情况？不点火、忽冷忽热，还是有故障代码？\"

**第3步：联系电话**
- \"师傅上门前打哪个电话联系您？\"

#### 开场白
\"您好，安居热水器售后热线，请问您家的热水器遇到什么问题了？\"

#### 结束
**结束语：** \"感谢来电，再见。\"
";

#[test]
fn the_trouble_told_at_the_opening_waits_for_the_safety_question() {
    let script = Script::parse(TRIAGE_SCRIPT, "triage").unwrap();
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("热水器打不着火，洗澡没热水", 1.0, now());
    assert!(said(&r).contains("燃气味"), "{}", said(&r));
    let r = c.on_utterance("没有", 1.0, now());
    assert!(said(&r).contains("电话"), "{}", said(&r));
    let fields = c.fields().values().cloned().collect::<Vec<_>>().join(" ");
    assert!(fields.contains("打不着火"), "{fields}");
    // The safety question answered with the trouble is not asked again.
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("热水器不点火，没闻到燃气味", 1.0, now());
    assert!(said(&r).contains("电话"), "{}", said(&r));
}

/// A reschedule branch whose line only promises ("确认后短信通知您") first gets the
/// new time, then its line; a read-back with a blank date and time is said with
/// the time the call settled on, never with its blanks.
#[test]
fn reschedule_asks_for_the_time_and_the_read_back_fills_its_blank() {
    let doc = "# 上门测量确认
## 开场白
- “您好，我是安家测量的小吴，跟您确认上门测量的时间，您现在方便吗？”
## 通话流程
### 1. 确认时间
- “我们约的是11月27号周五上午十点，这个时间可以吗？”
- 如果客户要改时间：“好的，我跟师傅确认后短信通知您。”
### 2. 复述
- “好的，跟您确认一下：X 月 X 号 X 点，师傅上门测量，出发前会先给您打电话。”
## 结束语
- “感谢您的配合，再见。”
";
    let script = Script::parse(doc, "reschedule").unwrap();
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    let r = c.on_utterance("方便", 1.0, now());
    assert!(said(&r).contains("十点"), "{}", said(&r));
    let r = c.on_utterance("周五我不在家，换个日子吧", 1.0, now());
    let s = said(&r);
    assert!(s.contains("哪天") && !s.contains("短信"), "{s}");
    let r = c.on_utterance("周六下午三点", 1.0, now());
    let s = said(&r);
    assert!(s.contains("短信通知您"), "{s}");
    assert!(s.contains("周六下午3点") && !s.contains('X'), "{s}");
}

/// Without a time anywhere in the call, the blank is left out, not read out.
#[test]
fn a_read_back_blank_without_a_time_is_left_out() {
    let doc = "# 回访
## 开场白
- “您好，我是回访专员小吴，您现在方便吗？”
## 通话流程
### 1. 评价
- “上次的服务您满意吗？”
### 2. 复述
- “好的，X 月 X 号的回访我记下了。”
";
    let script = Script::parse(doc, "blank").unwrap();
    let mut c = Conversation::new(&script, &BTreeMap::new(), now()).unwrap();
    c.opening(now());
    c.on_utterance("方便", 1.0, now());
    let r = c.on_utterance("满意", 1.0, now());
    let s = said(&r);
    assert!(s.contains("的回访我记下了") && !s.contains('X'), "{s}");
}
