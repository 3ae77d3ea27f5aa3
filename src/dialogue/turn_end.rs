//! Does a (speculative) transcript sound like the end of the caller's turn?
//!
//! Why: the acoustic endpoint waits a fixed hangover (about half a second of
//! silence) because callers pause inside a turn: between clauses, between the
//! groups of a phone number. Most of that wait is wasted on turns that are plainly
//! over: a question, a bare answer, a whole phone number. The call loop recognises
//! speech speculatively at the first short pause and asks this judge; when it says
//! the words are finished, the turn ends there, without waiting out the hangover.
//!
//! The judge is deterministic (no model) and grades its cues: a question, a bare
//! answer or a whole phone number ends the turn after a short pause; a short or
//! ordinary clause only after a longer one (Whisper puts 。 at clause pauses too:
//! 是的。没错。); words that promise more (a comma, 然后, 手机号是, a number's first
//! group) wait for the hangover. A wrong "finished" starts a reply to half a turn;
//! when the caller goes on, the call loop takes it back and hears the whole turn
//! ([`crate::call::continuation`]), so a wrong guess costs the caller a cut-off
//! syllable of reply, not a wrong answer.

/// Characters that end a question or exclamation.
const FINAL_MARKS: [char; 4] = ['？', '?', '！', '!'];
/// Marks that promise more (a list, a colon, a trailing comma).
const CONTINUING_MARKS: [char; 8] = ['，', ',', '、', '：', ':', '；', ';', '—'];
/// Sentence-final particles: a clause ending in one of these is a whole utterance.
const FINAL_PARTICLES: [char; 12] = [
    '吗', '呢', '吧', '啊', '呀', '啦', '嘛', '哈', '哦', '噢', '呗', '喽',
];
/// Words after which the speaker is certainly going on (conjunctions, prepositions,
/// a copula waiting for its object: 手机号是…).
const CONTINUATIONS: [&str; 22] = [
    "和", "跟", "与", "或者", "还有", "然后", "而且", "但是", "可是", "不过", "因为", "所以",
    "如果", "的话", "就是", "是", "在", "到", "给", "把", "比如", "那个",
];
/// Hesitations that hold the floor (那个…, 嗯…): never a whole turn.
/// Preambles too (请问…, 我想问一下…, 你好…, 喂…): what they announce comes after them.
const FILLERS: [&str; 16] = [
    "嗯",
    "呃",
    "额",
    "啊",
    "那个",
    "这个",
    "就是",
    "就是说",
    "然后",
    "请问",
    "问一下",
    "我想问",
    "我想问一下",
    "你好",
    "您好",
    "喂",
];
/// Question words: a last clause holding one is a whole question even when Whisper
/// ends it with 。 (网速特别慢，是什么原因。).
const QUESTION_WORDS: [&str; 21] = [
    "什么",
    "怎么",
    "为什么",
    "为啥",
    "哪",
    "多少",
    "多久",
    "多长",
    "几点",
    "几个",
    "几天",
    "谁",
    "如何",
    "是不是",
    "能不能",
    "可不可以",
    "有没有",
    "会不会",
    "要不要",
    "是否",
    "咋",
];
/// ... unless negated (不知道什么, 没什么).
const NOT_QUESTIONS: [&str; 5] = ["不知道", "没什么", "没啥", "什么都", "没有什么"];
/// The commonest whole answers on a service call (compared without punctuation).
const BARE_ANSWERS: [&str; 44] = [
    "好",
    "好的",
    "行",
    "可以",
    "对",
    "对的",
    "对对",
    "是",
    "是的",
    "嗯嗯",
    "没有",
    "没有了",
    "没了",
    "不用",
    "不用了",
    "不要",
    "不需要",
    "不是",
    "不对",
    "满意",
    "很满意",
    "非常满意",
    "还行",
    "还可以",
    "一般",
    "不满意",
    "没问题",
    "知道了",
    "明白",
    "明白了",
    "谢谢",
    "谢谢你",
    "再见",
    "拜拜",
    "没别的了",
    "没事",
    "没事了",
    "没有别的了",
    "就这些",
    "就这样",
    "好的谢谢",
    "可以的",
    "不太满意",
    "清楚了",
];
/// Other utterances this short (Han characters) are probably whole, but may be the
/// first clause of a longer turn (搬家了，宽带可以移机吗).
const SHORT_ANSWER_CHARS: usize = 3;
/// A clause ending in 了 this short is a whole answer (没别的了, 知道了, 不用了).
const SHORT_LE_CHARS: usize = 5;
/// Content characters for a clause with no cue either way to count as a [`Finished::Clause`].
const CLAUSE_MIN_CHARS: usize = 4;

fn is_digit_like(c: char) -> bool {
    c.is_ascii_digit() || "零〇一二三四五六七八九幺两".contains(c)
}

/// Whether a run of digits is a whole Chinese phone number: a mobile number (11
/// digits from 1) or a landline with its area code (0 + 9–11 digits).
fn whole_phone_number(digits: &[char]) -> bool {
    let first = digits.first().copied();
    let is =
        |c: Option<char>, d: char, han: &str| c == Some(d) || c.is_some_and(|c| han.contains(c));
    match digits.len() {
        11 if is(first, '1', "一幺") => true,
        10..=12 if is(first, '0', "零〇") => true,
        _ => false,
    }
}

/// Speech this short (ms, pauses included) is a whole answer whatever its words:
/// callers do not pause inside a one-second reply, and a short answer Whisper
/// misheard in noise (没别的了 → 美妃子女) should not wait out the hangover either.
const SHORT_TURN_MS: u64 = 1000;
/// ... as long as it is this short in characters.
const SHORT_TURN_CHARS: usize = 4;

/// How sure the judge is that a turn is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The words promise more (a comma, 然后, a copula, a number's first group): wait
    /// for the hangover.
    No,
    /// A whole clause with no cue either way (我家里突然断网了。): as likely the end of
    /// the turn as the first of several clauses, so worth ending only after a pause
    /// longer than most pauses between clauses.
    Clause,
    /// Short, so probably whole, but as likely the first clause of a longer turn
    /// (搬家了，…; a short answer misheard in noise): worth ending only after a
    /// longer pause than the other cues.
    Short,
    /// One of the common bare answers (好的, 没有了, 满意): whole when said on its
    /// own, though a longer turn can begin with one (对，我是王先生).
    Answer,
    /// A question, a sentence-final particle or a whole phone number.
    Strong,
}

/// True when `text` (a transcript, punctuation as Whisper writes it) has a cue that it
/// is a finished turn (more than being a whole clause); `speech_ms` is how long the
/// caller spoke.
pub fn sounds_finished(text: &str, speech_ms: u64) -> bool {
    !matches!(judge(text, speech_ms), Finished::No | Finished::Clause)
}

/// [`sounds_finished`] with the strength of the cue.
pub fn judge(text: &str, speech_ms: u64) -> Finished {
    use Finished::{Answer, Clause, No, Short, Strong};
    let t = text.trim();
    let Some(last) = t.chars().last() else {
        return No;
    };
    if FINAL_MARKS.contains(&last) {
        return Strong;
    }
    if CONTINUING_MARKS.contains(&last) {
        return No;
    }
    let body = t.trim_end_matches(['。', '.', '…', ' ', '～', '~']);
    if body.ends_with("...") || t.ends_with('…') {
        return No;
    }
    let content: Vec<char> = body
        .chars()
        .filter(|c| c.is_alphanumeric() && !c.is_ascii_punctuation())
        .collect();
    let Some(&end) = content.last() else {
        return No;
    };
    let hans = content.len();
    let bare: String = content.iter().collect();
    if FILLERS.contains(&bare.as_str()) {
        return No;
    }
    if BARE_ANSWERS.contains(&bare.as_str()) {
        return Answer;
    }
    // A short run of digits is likely a number's first group (138…); a short word
    // that merely ends in a digit-like character (满意 misheard as 埋一) is not.
    if hans <= SHORT_ANSWER_CHARS && !content.iter().all(|&c| is_digit_like(c)) {
        return Short;
    }
    if CONTINUATIONS.iter().any(|w| body.ends_with(w)) {
        return No;
    }
    if is_digit_like(end) {
        // Numbers are read out in groups with pauses between them: only a whole
        // phone number is finished; anything else waits for the hangover.
        let run: Vec<char> = body
            .chars()
            .rev()
            .filter(|c| !matches!(c, ' ' | '-' | '－'))
            .take_while(|&c| is_digit_like(c))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return if whole_phone_number(&run) { Strong } else { No };
    }
    if FINAL_PARTICLES.contains(&end) {
        return Strong;
    }
    let last_clause = body
        .rsplit(['。', '，', ',', '；', ';', '.'])
        .next()
        .unwrap_or(body);
    if QUESTION_WORDS.iter().any(|w| last_clause.contains(w))
        && !NOT_QUESTIONS.iter().any(|w| last_clause.contains(w))
    {
        return Strong;
    }
    if speech_ms <= SHORT_TURN_MS && hans <= SHORT_TURN_CHARS {
        return Short;
    }
    if end == '了' && hans <= SHORT_LE_CHARS {
        return Short;
    }
    if hans >= CLAUSE_MIN_CHARS {
        Clause
    } else {
        No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn of ordinary length (long enough for a mid-turn pause).
    fn fin(t: &str) -> bool {
        sounds_finished(t, 2500)
    }

    #[test]
    fn cues_have_a_strength() {
        assert_eq!(judge("还能续费吗？", 2000), Finished::Strong);
        assert_eq!(judge("手机号是13912345678。", 3000), Finished::Strong);
        assert_eq!(judge("好的。", 700), Finished::Answer);
        assert_eq!(judge("没别的了", 1500), Finished::Answer);
        assert_eq!(
            judge("搬家了。", 600),
            Finished::Short,
            "may go on: 搬家了，…"
        );
        assert_eq!(
            judge("美妃子女。", 900),
            Finished::Short,
            "a misheard short answer"
        );
        assert_eq!(
            judge("往速特别慢着。", 1100),
            Finished::Clause,
            "a whole clause, maybe the first of a question"
        );
        assert_eq!(judge("我现在在开车。", 1500), Finished::Clause);
        assert_eq!(judge("就是那个", 1500), Finished::No, "a filler at the end");
        assert_eq!(
            judge("埋一。", 600),
            Finished::Short,
            "a short word ending in a digit-like character is not a number"
        );
        assert_eq!(judge("一三八", 900), Finished::No, "a number's first group");
        assert_eq!(
            judge("喂。", 400),
            Finished::No,
            "a call for attention comes first"
        );
    }

    #[test]
    fn a_short_turn_is_finished_unless_its_words_promise_more() {
        assert!(
            sounds_finished("美妃子女。", 900),
            "a misheard short answer"
        );
        assert!(!sounds_finished("美妃子女。", 2500));
        assert!(!sounds_finished("我想问一下，", 900), "a trailing comma");
        assert!(!sounds_finished("那个。", 900), "a filler");
        assert!(
            !sounds_finished("手机号是139", 1000),
            "the first group of a number"
        );
        assert!(
            !sounds_finished("我的手机号码是。", 1100),
            "a copula waiting for its object"
        );
    }

    #[test]
    fn questions_and_particles_end_a_turn() {
        assert!(fin("宽带到期了还能续费吗？"));
        assert!(fin("光猫是哪个设备?"));
        assert!(fin("你明天上午十点再打给我吧。"));
        assert!(fin("那我等你们电话呢"));
        assert!(fin("太好了！"));
    }

    #[test]
    fn a_last_clause_with_a_question_word_ends_a_turn() {
        assert!(fin("网速特别慢，是什么原因。"));
        assert!(fin("我家里突然断网了。该怎么办"));
        assert!(fin("光猫是哪个设备。"));
        assert!(!fin("我也不知道什么原因。"), "negated");
        assert!(!fin("什么原因，"), "a trailing comma promises more");
    }

    #[test]
    fn bare_answers_end_a_turn() {
        for t in [
            "好的。",
            "没有了",
            "满意。",
            "对",
            "不用了。",
            "没别的了。",
            "还行",
            "可以。",
        ] {
            assert!(fin(t), "{t}");
        }
        assert!(fin("不是。"));
        assert!(fin("是"));
        assert!(!fin("那个。"), "a filler holds the floor");
        assert!(!fin("嗯"));
        assert!(!fin("请问。"), "a preamble: the question follows");
        assert!(!fin("您好，"));
    }

    #[test]
    fn a_first_clause_has_no_cue_that_the_turn_is_over() {
        for t in [
            "我家里突然断网了。",
            "我现在在开车。",
            "晚上网速特别慢。",
            "我的电话号码已经换了",
            "我家宽带从早上开始就一直连不上网。",
            "是这样的。",
        ] {
            assert!(!fin(t), "{t}");
            assert_eq!(
                judge(t, 2500),
                Finished::Clause,
                "{t}: waits a longer pause"
            );
        }
        for t in ["我想问一下，", "就是那个", "手机号是", "然后"] {
            assert!(!fin(t), "{t}");
            assert_eq!(judge(t, 2500), Finished::No, "{t}: waits for the hangover");
        }
    }

    #[test]
    fn numbers_end_a_turn_only_when_whole() {
        assert!(fin("手机号是13912345678。"));
        assert!(fin("我的电话是一三七一一二二三三四四"));
        assert!(fin("座机是0571-88886666"));
        assert!(!fin("手机号是139。"), "first group of a mobile number");
        assert!(!fin("手机号是1391234。"));
        assert!(
            !fin("宽带账号是88662015。"),
            "an account number of unknown length"
        );
        assert!(!fin("房间号是三零二"));
    }

    #[test]
    fn nothing_is_not_a_finished_turn() {
        assert!(!fin(""));
        assert!(!fin("。"));
        assert!(!fin("  "));
    }
}
