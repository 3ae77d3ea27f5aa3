//! Script-term correction: Whisper base writes many in-domain words as a
//! near-homophone (路由器 → 录游戏, 滤芯 → 绿心, 驿站 → 一站), because nothing in a
//! 2 s clip tells it which of the sound-alikes is meant. Each call knows its
//! script, so after decoding, a span that *sounds* like one of the script's terms
//! (same toneless syllables, allowing the accent pairs zh/z, ch/c, sh/s, n/l,
//! -n/-ng and one more syllable in long terms) is written as the term.
//!
//! This costs microseconds per turn, where putting the same terms in Whisper's
//! prompt costs decoder time on every turn (see `AsrConfig::hot_words_chars`).
//! The terms are the script's own rare nouns ([`script_terms`]): common words
//! (时间, 问题) are never terms, so everyday speech is left alone.

use std::sync::OnceLock;

use jieba_rs::Jieba;
use pinyin::ToPinyin;

/// Terms from a script's text: nouns and verbs of 2–6 Chinese characters that jieba's
/// dictionary counts as uncommon (or does not know), most frequent in the script
/// first. Common words are left out: correcting towards them would rewrite
/// ordinary speech.
pub fn script_terms<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let jieba = jieba();
    let mut counts: Vec<(String, usize, usize)> = Vec::new();
    for (order, text) in texts.into_iter().enumerate() {
        for tag in jieba.tag(text, true) {
            let w = tag.word;
            let n = w.chars().count();
            if !(2..=6).contains(&n) || !w.chars().all(is_han) {
                continue;
            }
            // Nouns, and verbs as rare as a term (取件, 移机, 停供).
            let wanted = tag.tag.starts_with('n') || matches!(tag.tag, "vn" | "x" | "v");
            if !wanted || jieba.suggest_freq(w) > MAX_TERM_FREQ {
                continue;
            }
            match counts.iter_mut().find(|(t, _, _)| t == w) {
                Some(c) => c.1 += 1,
                None => counts.push((w.to_string(), 1, order)),
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    counts.into_iter().map(|(t, _, _)| t).collect()
}

/// jieba's dictionary frequency above which a word is everyday vocabulary
/// (时间 ≈ 40 000, 问题 ≈ 60 000; 路由器 and 驿站 are far below).
const MAX_TERM_FREQ: usize = 3_000;

/// Loads the segmenter's dictionary and tagger (about 0.1 s) ahead of the first
/// call, so a call's start does not pay for them.
pub fn warm_up() {
    let _ = jieba().tag("您好，请问宽带有什么问题？", true);
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn is_han(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// One syllable, toneless, split into initial and final.
#[derive(Debug, Clone, PartialEq)]
struct Syllable {
    initial: &'static str,
    fin: String,
}

const INITIALS: [&str; 23] = [
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r",
    "z", "c", "s", "y", "w",
];

fn syllable(c: char) -> Option<Syllable> {
    let plain = c.to_pinyin()?.plain();
    let initial = INITIALS
        .iter()
        .find(|i| plain.starts_with(**i))
        .copied()
        .unwrap_or("");
    Some(Syllable {
        initial,
        fin: plain[initial.len()..].to_string(),
    })
}

/// The accent-confusable class of an initial (zh/z, ch/c, sh/s, n/l, and the
/// palatals j/q/x that 8 kHz audio blurs).
fn initial_class(i: &str) -> &str {
    match i {
        "zh" => "z",
        "ch" => "c",
        "sh" => "s",
        "l" => "n",
        "q" | "x" => "j",
        other => other,
    }
}

/// The confusable class of a final: -n/-ng, and after the palatals j/q/x the
/// rounded ü (written u: 取 qu, 选 xuan) against the plain i (起 qi, 先 xian).
fn final_class(initial: &str, f: &str) -> String {
    let f = f
        .strip_suffix('g')
        .filter(|s| s.ends_with('n'))
        .unwrap_or(f);
    match (initial_class(initial), f.strip_prefix('u')) {
        ("j", Some(rest)) => format!("i{rest}"),
        _ => f.to_string(),
    }
}

/// 0 for the same syllable, 0.5 for an accent pair, 1 otherwise.
fn distance(a: &Syllable, b: &Syllable) -> f32 {
    if a == b {
        return 0.0;
    }
    let same_initial = initial_class(a.initial) == initial_class(b.initial);
    let same_final = final_class(a.initial, &a.fin) == final_class(b.initial, &b.fin);
    match (same_initial, same_final) {
        (true, true) => 0.5,
        _ => 1.0,
    }
}

/// A term ready for matching.
#[derive(Debug, Clone)]
pub struct Term {
    text: Vec<char>,
    sounds: Vec<Syllable>,
}

impl Term {
    /// `None` for words that cannot be terms (not 2–8 Chinese characters).
    pub fn new(word: &str) -> Option<Self> {
        let text: Vec<char> = word.chars().collect();
        if !(2..=8).contains(&text.len()) || !text.iter().all(|c| is_han(*c)) {
            return None;
        }
        let sounds = text.iter().map(|c| syllable(*c)).collect::<Option<_>>()?;
        Some(Self { text, sounds })
    }

    /// The largest sound distance a span may have and still be this term: none
    /// for two characters (only exact homophones: 新文 → 新闻), half a syllable
    /// for three, one syllable for four or more.
    fn allowance(&self) -> f32 {
        match self.text.len() {
            2 => 0.0,
            3 => 0.5,
            _ => 1.0,
        }
    }
}

/// Terms for matching, longest first (a long term wins over a shorter one inside it).
pub fn prepare(words: &[String]) -> Vec<Term> {
    let mut terms: Vec<Term> = words.iter().filter_map(|w| Term::new(w)).collect();
    terms.sort_by_key(|t| std::cmp::Reverse(t.text.len()));
    terms
}

/// `text` with every span that sounds like a term written as the term, and the
/// replacements made (heard, term).
pub fn correct(text: &str, terms: &[Term]) -> (String, Vec<(String, String)>) {
    let chars: Vec<char> = text.chars().collect();
    let sounds: Vec<Option<Syllable>> = chars
        .iter()
        .map(|c| if is_han(*c) { syllable(*c) } else { None })
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut fixes = Vec::new();
    let mut i = 0;
    'pos: while i < chars.len() {
        for t in terms {
            let n = t.text.len();
            if i + n > chars.len() {
                continue;
            }
            let span = &chars[i..i + n];
            if span == t.text.as_slice() {
                out.extend(span);
                i += n;
                continue 'pos;
            }
            let mut cost = 0.0;
            let mut first_exact = true;
            for (k, want) in t.sounds.iter().enumerate() {
                let Some(heard) = &sounds[i + k] else {
                    cost = f32::INFINITY;
                    break;
                };
                let d = distance(heard, want);
                if k == 0 && d > 0.0 {
                    first_exact = false;
                }
                cost += d;
                if cost > t.allowance() {
                    break;
                }
            }
            // A span that differs in every character but sounds alike is a
            // homophone; one that keeps the start of the term is a near-miss. A
            // long term that also starts differently is too far.
            if cost <= t.allowance() && (first_exact || n < 4 || cost == 0.0) {
                let heard: String = span.iter().collect();
                let term: String = t.text.iter().collect();
                out.push_str(&term);
                fixes.push((heard, term));
                i += n;
                continue 'pos;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    (out, fixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(text: &str, words: &[&str]) -> String {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        correct(text, &prepare(&words)).0
    }

    #[test]
    fn near_homophones_of_terms_are_written_as_the_terms() {
        assert_eq!(fix("录游戏重启过了", &["路由器"]), "路由器重启过了");
        assert_eq!(fix("每日经济新文", &["新闻"]), "每日经济新闻");
        assert_eq!(fix("绿心多久换一次", &["滤芯"]), "滤芯多久换一次");
        assert_eq!(
            fix("我今天去一站取件", &["驿站", "取件码"]),
            "我今天去驿站取件"
        );
        // ü and i after j/q/x blur at 8 kHz: 起见马 is 取件码 (3 syllables, one
        // of them an accent pair).
        assert_eq!(fix("起见马是多少", &["取件码"]), "取件码是多少");
    }

    #[test]
    fn other_words_and_the_terms_themselves_are_left_alone() {
        // Different sounds, digits, Latin letters, and the term as written.
        assert_eq!(fix("我明天上午在家", &["路由器", "滤芯"]), "我明天上午在家");
        assert_eq!(fix("尾号是1234", &["尾号"]), "尾号是1234");
        assert_eq!(fix("WiFi连不上", &["网费"]), "WiFi连不上");
        assert_eq!(fix("路由器坏了", &["路由器"]), "路由器坏了");
        // Two characters need the very same syllables: 绿星 (lü xing) is only an
        // accent pair of 滤芯 (lü xin).
        assert_eq!(fix("绿星", &["滤芯"]), "绿星");
        // A four-character term may differ by one syllable, but not at its start
        // when the rest is also off.
        assert_eq!(fix("工作地址", &["装机地址"]), "工作地址");
    }

    #[test]
    fn script_terms_are_uncommon_nouns() {
        let terms = script_terms([
            "请您说一下光猫上的指示灯，路由器重启过吗？",
            "师傅上门前会联系您，路由器的位置方便告诉我吗？",
            "时间和问题我都记下了。",
        ]);
        assert!(terms.contains(&"路由器".to_string()), "{terms:?}");
        assert_eq!(terms.first().map(String::as_str), Some("路由器"));
        assert!(!terms.contains(&"时间".to_string()), "{terms:?}");
        assert!(!terms.contains(&"问题".to_string()), "{terms:?}");
    }
}
