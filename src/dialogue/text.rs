//! Text helpers shared by the script loader, the classifier and the KB retriever:
//! quote stripping, utterance normalisation, homophone-tolerant (pinyin) keyword
//! matching, Chinese numerals and spoken e-mail addresses.
//!
//! ASR output for Mandarin often has the right sound but the wrong character
//! (油箱 for 邮箱, 在说 for 再说) and no punctuation, so keywords are matched both
//! on characters and on toneless, accent-folded pinyin.

use std::sync::OnceLock;

use pinyin::ToPinyinMulti;
use regex::Regex;

/// Opening and closing quote characters accepted around spoken lines.
const OPEN_QUOTES: &[char] = &['“', '「', '『', '"', '‘', '《'];
const CLOSE_QUOTES: &[char] = &['”', '」', '』', '"', '’', '》'];

/// Returns the spoken text inside the first opening and the last closing quote,
/// or the trimmed text when it has no quotes. Markdown bold markers are removed.
pub fn extract_speech(s: &str) -> String {
    let s = strip_markup(s);
    let open = s.find(|c| OPEN_QUOTES.contains(&c) && c != '《');
    let Some(start) = open else {
        return s.trim().to_string();
    };
    let after = &s[start..];
    let first_len = after.chars().next().map(char::len_utf8).unwrap_or(0);
    let inner = &after[first_len..];
    let end = inner.rfind(|c| CLOSE_QUOTES.contains(&c) && c != '》');
    // Quotes mark the line to say only when they wrap it: nothing but a label
    // (若对方不方便：, A:, a list mark) before, nothing but punctuation after.
    // Quotes inside a sentence (在公众号的“我的账单”里查看) are part of it.
    let before = s[..start].trim();
    let label_before = before.is_empty()
        || before.ends_with(['：', ':'])
        || before
            .chars()
            .all(|c| matches!(c, '-' | '*' | '•' | '·' | '.' | '、') || c.is_ascii_digit());
    let rest_after = end
        .map(|e| {
            let close_len = inner[e..].chars().next().map(char::len_utf8).unwrap_or(0);
            inner[e + close_len..].trim()
        })
        .unwrap_or("");
    let only_punct_after = rest_after
        .chars()
        .all(|c| c.is_whitespace() || "。，！？；、.,!?;)）".contains(c));
    if !(label_before && only_punct_after) {
        return s.trim().to_string();
    }
    let body = match end {
        Some(e) => &inner[..e],
        None => inner,
    };
    let cleaned: String = body
        .chars()
        .filter(|c| !matches!(c, '“' | '”' | '「' | '」' | '『' | '』' | '"'))
        .collect();
    cleaned.trim().to_string()
}

/// True when `s` contains a quoted segment.
pub fn has_quote(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '“' | '「' | '『' | '"' | '”' | '」'))
}

/// Removes Markdown emphasis, code ticks and surrounding whitespace.
pub fn strip_markup(s: &str) -> String {
    s.replace("**", "")
        .replace("__", "")
        .replace('`', "")
        .trim()
        .to_string()
}

/// Removes parenthesised asides （…） (…) 【…】 [..] from a heading or title.
pub fn strip_parens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '（' | '(' | '【' | '[' => depth += 1,
            '）' | ')' | '】' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// Full-width to half-width for ASCII letters, digits and a few symbols.
fn to_halfwidth(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// True for CJK unified ideographs.
pub fn is_han(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')
}

/// Utterance normalisation: half-width, lower case, punctuation and spaces
/// removed (ASR punctuation is unreliable anyway), 〇/○ as 零.
pub fn normalize(s: &str) -> String {
    s.chars()
        .map(to_halfwidth)
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || *c == '@' || *c == '.')
        .map(|c| if c == '〇' || c == '○' { '零' } else { c })
        .collect()
}

/// The last `n` characters of `s` (all of it when shorter).
pub fn last_chars(s: &str, n: usize) -> String {
    let skip = s.chars().count().saturating_sub(n);
    s.chars().skip(skip).collect()
}

/// Greetings and hesitations a caller opens with before saying anything
/// ("喂，你好，那个……电梯停在二楼不动了"). They carry no meaning for the turn.
const OPENERS: &[&str] = &[
    "喂喂",
    "喂",
    "你好啊",
    "你好呀",
    "您好啊",
    "您好呀",
    "你好",
    "您好",
    "哈喽",
    "hello",
    "hi",
    "嗨",
    "那个",
    "就是那个",
];

/// "我是房东，我租出去那套房子的门锁坏了" → "我租出去那套房子的门锁坏了": who the
/// caller is, said before what they ring about, is not the need. Only a short
/// first clause 我是…/我这边是… with more than four characters after it.
pub fn strip_self_introduction(s: &str) -> &str {
    let Some((first, rest)) = s.split_once(['，', ',', '。', ' ']) else {
        return s;
    };
    let who = first
        .trim()
        .strip_prefix("我是")
        .or_else(|| first.trim().strip_prefix("我这边是"));
    let rest = rest.trim_start_matches(['，', ',', '。', ' ']);
    match who {
        // "我是锦华小区的": where the caller lives is kept (an address).
        Some(w)
            if (1..=6).contains(&w.chars().count())
                && !w.ends_with('的')
                && ![
                    "小区", "路", "街", "村", "号", "楼", "栋", "幢", "苑", "花园", "公寓",
                ]
                .iter()
                .any(|k| w.contains(k))
                && rest.chars().filter(|c| is_han(*c)).count() > 4 =>
        {
            rest
        }
        _ => s,
    }
}

/// The utterance without leading greetings and hesitations, when words follow
/// them: "你好，我家电梯停在二楼不动了" is a fault report, not a greeting. A bare
/// greeting ("喂，你好") is returned whole, since it is the whole turn.
pub fn strip_openers(s: &str) -> &str {
    let separators = |c: char| {
        matches!(
            c,
            '，' | ',' | '。' | '.' | '！' | '!' | '、' | '…' | ' ' | '\u{3000}' | '～' | '~'
        )
    };
    let mut rest = s.trim_start_matches(separators);
    loop {
        let lower = rest.to_lowercase();
        let Some(w) = OPENERS.iter().find(|w| lower.starts_with(**w)) else {
            break;
        };
        // The ASCII openers are the same length in lower case; the others are
        // unchanged by it, so the byte offset carries over.
        let after = rest[w.len()..].trim_start_matches(separators);
        // "你好好想想" or "那个人": the opener must stand apart, or be 喂/你好/您好
        // run straight into a sentence ASR did not punctuate.
        let apart = after.len() < rest.len() - w.len();
        let run_in = matches!(*w, "喂喂" | "你好" | "您好")
            && !after.starts_with(['好', '吗', '呀', '啊', '呢']);
        if !apart && !run_in {
            break;
        }
        rest = after;
    }
    if rest.chars().filter(|c| is_han(*c)).count() < 2 {
        s
    } else {
        rest
    }
}

/// Folds accent-confusable pinyin (zh/z, ch/c, sh/s, n/l, -ng/-n) so that
/// near-homophones from regional accents or ASR still match.
fn fold_syllable(s: &str) -> String {
    let mut t = s.to_string();
    for (a, b) in [("zh", "z"), ("ch", "c"), ("sh", "s")] {
        if t.starts_with(a) {
            t = format!("{b}{}", &t[a.len()..]);
        }
    }
    if t.starts_with('l') {
        t.replace_range(0..1, "n");
    }
    if t.ends_with("ng") && t.len() > 2 {
        t.pop();
    }
    t
}

/// True when both characters' common readings are the same toneless syllable.
fn same_toned_reading(a: char, b: char) -> bool {
    // With the tone: 刮了 (guā) is not 挂了 (guà), 邮箱 and 油箱 (yóu) still match.
    let first = |c: char| {
        c.to_pinyin_multi()
            .and_then(|m| m.into_iter().next())
            .map(|p| p.with_tone())
    };
    matches!((first(a), first(b)), (Some(x), Some(y)) if x == y)
}

/// One position of a phonetic string: all readings of a character, folded.
#[derive(Debug, Clone)]
pub struct PhoneticChar {
    pub ch: char,
    pub readings: Vec<String>,
}

/// Characters of a normalised text with their folded pinyin readings.
#[derive(Debug, Clone)]
pub struct Phonetic {
    pub text: String,
    pub chars: Vec<PhoneticChar>,
}

impl Phonetic {
    /// The common reading of every character. Rare heteronym readings in the
    /// pinyin tables (块 read "yue") make unrelated words sound alike, so
    /// utterances and keywords both use the common reading only.
    pub fn new(normalized: &str) -> Self {
        Self::build(normalized, 1)
    }

    /// Only the common reading of every character (for keywords): rare
    /// heteronym readings would make unrelated words sound alike.
    pub fn new_common(normalized: &str) -> Self {
        Self::build(normalized, 1)
    }

    fn build(normalized: &str, max_readings: usize) -> Self {
        let chars = normalized
            .chars()
            .map(|c| {
                let mut readings: Vec<String> = Vec::new();
                if let Some(multi) = c.to_pinyin_multi() {
                    for p in multi.into_iter().take(max_readings) {
                        let f = fold_syllable(p.plain());
                        if !readings.contains(&f) {
                            readings.push(f);
                        }
                    }
                }
                PhoneticChar { ch: c, readings }
            })
            .collect();
        Self {
            text: normalized.to_string(),
            chars,
        }
    }

    /// True when `kw` occurs in the text, by characters, or (for keywords of two
    /// or more characters) by sound.
    pub fn contains(&self, kw: &Phonetic) -> bool {
        self.find(kw).is_some()
    }

    /// Character index of the first occurrence of `kw` (characters or sound).
    pub fn find(&self, kw: &Phonetic) -> Option<usize> {
        if let Some(byte) = self.text.find(&kw.text) {
            return Some(self.text[..byte].chars().count());
        }
        let n = kw.chars.len();
        if n < 2 || n > self.chars.len() {
            return None;
        }
        // At least half the characters must be the keyword's own: an ASR slip
        // swaps a character or two (油箱, 在说), it does not rewrite the word, and
        // all-sound matches turn unrelated words into keywords. In two-character
        // keywords the swapped character must sound the same without folding
        // (油箱 for 邮箱): folded, 很满(意) would already pass for 很忙.
        let strict = n == 2;
        (0..=self.chars.len() - n).find(|&i| {
            let mut exact = 0;
            let all = kw.chars.iter().enumerate().all(|(j, k)| {
                let c = &self.chars[i + j];
                if c.ch == k.ch {
                    exact += 1;
                    true
                } else if strict {
                    same_toned_reading(c.ch, k.ch)
                } else {
                    !k.readings.is_empty() && c.readings.iter().any(|r| k.readings.contains(r))
                }
            });
            all && exact * 2 >= n
        })
    }
}

/// A keyword list compiled once to phonetic form.
#[derive(Debug, Clone)]
pub struct Keywords(Vec<Phonetic>);

impl Keywords {
    pub fn new(words: &[&str]) -> Self {
        Self(
            words
                .iter()
                .map(|w| Phonetic::new_common(&normalize(w)))
                .collect(),
        )
    }
    /// The first keyword found in `text`, if any.
    pub fn first_in(&self, text: &Phonetic) -> Option<&str> {
        self.0
            .iter()
            .find(|k| text.contains(k))
            .map(|k| k.text.as_str())
    }
    /// Every keyword found in `text`, in list order.
    pub fn all_in<'a>(&'a self, text: &'a Phonetic) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(|k| text.contains(k))
            .map(|k| k.text.as_str())
    }
    pub fn any_in(&self, text: &Phonetic) -> bool {
        self.first_in(text).is_some()
    }
    /// Character-only match on normalised text, for function words whose sound-alikes
    /// are everyday content (是谁 / 是水).
    pub fn any_literal_in(&self, norm: &str) -> bool {
        self.0.iter().any(|k| norm.contains(k.text.as_str()))
    }
}

/// Value of one Chinese or Arabic digit character.
fn digit_value(c: char) -> Option<u32> {
    match c {
        '零' | '〇' | '0' => Some(0),
        '一' | '幺' | '1' => Some(1),
        '二' | '两' | '俩' | '2' => Some(2),
        '三' | '仨' | '3' => Some(3),
        '四' | '4' => Some(4),
        '五' | '5' => Some(5),
        '六' | '6' => Some(6),
        '七' | '7' => Some(7),
        '八' | '8' => Some(8),
        '九' | '9' => Some(9),
        _ => None,
    }
}

/// Parses a number written in Arabic digits or Chinese numerals up to 99
/// (三, 十二, 二十三, 15, 两). Returns the value and the characters consumed.
pub fn parse_number(chars: &[char]) -> Option<(u32, usize)> {
    if chars.is_empty() {
        return None;
    }
    if chars[0].is_ascii_digit() {
        let n = chars.iter().take_while(|c| c.is_ascii_digit()).count();
        let s: String = chars[..n].iter().collect();
        return s.parse().ok().map(|v| (v, n));
    }
    let mut i = 0;
    let mut value = 0u32;
    let mut tens_seen = false;
    if let Some(d) = digit_value(chars[0]) {
        value = d;
        i = 1;
    }
    if i < chars.len() && chars[i] == '十' {
        value = if i == 0 { 10 } else { value * 10 };
        i += 1;
        tens_seen = true;
        if i < chars.len() {
            if let Some(d) = digit_value(chars[i]) {
                if d > 0 {
                    value += d;
                    i += 1;
                }
            }
        }
    } else if i == 0 && chars[0] == '十' {
        value = 10;
        i = 1;
        tens_seen = true;
    }
    if i == 0 {
        return None;
    }
    let _ = tens_seen;
    Some((value, i))
}

/// A blank date and time in a read-back line (`X 月 X 号 X 点`, `××月××日`): the
/// loader keeps such a line as speech and the engine fills it with the call's time.
pub(crate) fn time_blank_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"[XxＸ×]{1,2}\s*月\s*[XxＸ×]{1,2}\s*[号日](?:\s*[XxＸ×]{1,2}\s*[点时](?:\s*[XxＸ×]{1,2}\s*分)?)?",
        )
        .unwrap_or_else(|e| panic!("static regex: {e}"))
    })
}

fn email_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
            .unwrap_or_else(|e| panic!("static e-mail regex is valid: {e}"))
    })
}

fn spoken_at_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)(^|[^a-z])at([^a-z]|$)")
            .unwrap_or_else(|e| panic!("static at regex is valid: {e}"))
    })
}

/// Finds an e-mail address in an utterance, written (`a@b.com`) or spoken
/// (`call at xbench dot com`, `liulei 艾特 taishan 点 com`, digits in Chinese).
pub fn extract_email(utterance: &str) -> Option<String> {
    let mut s: String = utterance
        .chars()
        .map(to_halfwidth)
        .flat_map(char::to_lowercase)
        .collect();
    for at in ["艾特", "爱特", "at符号", "圈a", "小老鼠", "＠"] {
        s = s.replace(at, " @ ");
    }
    s = spoken_at_re().replace_all(&s, "$1@$2").into_owned();
    for dot in ["点儿", "点", "dot", "。"] {
        s = s.replace(dot, ".");
    }
    for (from, to) in [
        ("下划线", "_"),
        ("underscore", "_"),
        ("中划线", "-"),
        ("横杠", "-"),
        ("杠", "-"),
    ] {
        s = s.replace(from, to);
    }
    let s: String = s
        .chars()
        .map(|c| match digit_value(c) {
            Some(d) if !c.is_ascii_digit() => char::from_digit(d, 10).unwrap_or(c),
            _ => c,
        })
        .filter(|c| !c.is_whitespace() && *c != ',' && *c != '，')
        .collect();
    // Keep only the ASCII run around the '@' so Chinese words next to it drop out.
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._%+-".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect();
    email_re()
        .find(&cleaned)
        .map(|m| m.as_str().trim_end_matches('.').to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_self_introduction_before_the_need_is_dropped() {
        assert_eq!(
            strip_self_introduction("我是房东，我租出去那套房子的门锁坏了"),
            "我租出去那套房子的门锁坏了"
        );
        assert_eq!(strip_self_introduction("我是王芳，你说"), "我是王芳，你说");
        assert_eq!(strip_self_introduction("我是他儿子"), "我是他儿子");
        let lives = "我是锦华小区的，十二号楼三单元四零二，暖气不热了";
        assert_eq!(strip_self_introduction(lives), lives);
    }
    use super::*;

    #[test]
    fn openers_go_when_words_follow() {
        assert_eq!(
            strip_openers("你好，我家电梯停在二楼不动了"),
            "我家电梯停在二楼不动了"
        );
        assert_eq!(strip_openers("喂，你好，那个……我想配点药"), "我想配点药");
        assert_eq!(strip_openers("您好我家宽带断了"), "我家宽带断了");
        assert_eq!(strip_openers("喂，你好"), "喂，你好");
        assert_eq!(strip_openers("你好"), "你好");
        assert_eq!(strip_openers("那个人不是我"), "那个人不是我");
        assert_eq!(strip_openers("你好好想想"), "你好好想想");
        assert_eq!(strip_openers("Hello, 网断了"), "网断了");
    }

    #[test]
    fn speech_is_taken_from_any_quote_style() {
        assert_eq!(extract_speech("- “您好，请问”"), "您好，请问");
        assert_eq!(extract_speech("「好的」"), "好的");
        assert_eq!(extract_speech("\"可以\""), "可以");
        assert_eq!(extract_speech("若对方忙：“那我晚点打”"), "那我晚点打");
        assert_eq!(extract_speech("没有引号的句子"), "没有引号的句子");
        // Quotes inside a sentence belong to it.
        assert_eq!(
            extract_speech("您可以在公众号的“我的账单”里查看。"),
            "您可以在公众号的“我的账单”里查看。"
        );
        assert_eq!(
            extract_speech("答：在“无线设置”里就能改密码"),
            "答：在“无线设置”里就能改密码"
        );
        assert_eq!(extract_speech("A: “可以移机。”"), "可以移机。");
    }

    #[test]
    fn homophones_match_by_sound() {
        let kw = Keywords::new(&["邮箱", "再说一遍"]);
        assert!(kw.any_in(&Phonetic::new(&normalize("发我油箱吧"))));
        assert!(kw.any_in(&Phonetic::new(&normalize("你在说一遍"))));
        assert!(!kw.any_in(&Phonetic::new(&normalize("好的没问题"))));
        // A two-character keyword's swapped character must keep its tone:
        // 刮了 (guā) is not 挂了 (guà).
        let bye = Keywords::new(&["挂了"]);
        assert!(!bye.any_in(&Phonetic::new(&normalize("倒车刮了下后视镜"))));
        assert!(bye.any_in(&Phonetic::new(&normalize("我先挂了"))));
    }

    #[test]
    fn numbers_parse() {
        let p = |s: &str| parse_number(&s.chars().collect::<Vec<_>>()).map(|x| x.0);
        assert_eq!(p("三点"), Some(3));
        assert_eq!(p("十二"), Some(12));
        assert_eq!(p("二十三"), Some(23));
        assert_eq!(p("十"), Some(10));
        assert_eq!(p("15分"), Some(15));
        assert_eq!(p("两个"), Some(2));
        assert_eq!(p("好"), None);
    }

    #[test]
    fn spoken_emails_are_recognised() {
        assert_eq!(
            extract_email("发到call at xbench dot com").as_deref(),
            Some("call@xbench.com")
        );
        assert_eq!(
            extract_email("邮箱是liulei艾特taishan点com").as_deref(),
            Some("liulei@taishan.com")
        );
        assert_eq!(
            extract_email("我的邮箱 zhang.wei@example.cn 谢谢").as_deref(),
            Some("zhang.wei@example.cn")
        );
        assert_eq!(
            extract_email("一二三四五艾特qq点com").as_deref(),
            Some("12345@qq.com")
        );
        assert_eq!(extract_email("发我邮箱吧"), None);
    }
}
