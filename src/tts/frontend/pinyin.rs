//! Hanzi → pinyin with phrase context.
//!
//! Readings come from pypinyin's tables (MIT), provisioned into the model cache as JSON:
//! `phrases_dict.json` maps a word to one tone-marked reading per character, and
//! `pinyin_dict.json` maps a code point to its readings, most common first. A word is
//! read from the phrase table when it is there; otherwise it is cut by longest phrase
//! match; single characters fall back to a small context rule table for the common
//! polyphones (了, 得, 地, 着, 还, 重, 种 …) and then to the most common reading.

use std::collections::HashMap;
use std::path::Path;

use super::normalize::is_hanzi;
use super::syllable::{Source, Syl};
use crate::tts::TtsError;

/// Phrase and character pinyin tables.
pub struct PinyinDict {
    phrases: HashMap<String, Vec<Syl>>,
    chars: HashMap<char, Syl>,
    max_phrase_chars: usize,
}

impl PinyinDict {
    /// Loads both JSON tables (pypinyin's own format).
    pub fn load(phrases: &Path, chars: &Path) -> Result<Self, TtsError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| TtsError::Data {
                path: p.to_path_buf(),
                message: e.to_string(),
            })
        };
        let bad = |p: &Path, e: serde_json::Error| TtsError::Data {
            path: p.to_path_buf(),
            message: format!("not pypinyin's JSON table: {e}"),
        };
        let raw_phrases: HashMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&read(phrases)?).map_err(|e| bad(phrases, e))?;
        let raw_chars: HashMap<String, String> =
            serde_json::from_str(&read(chars)?).map_err(|e| bad(chars, e))?;
        Ok(Self::from_tables(raw_phrases, raw_chars))
    }

    /// Builds the tables from pypinyin's structures (phrase → per-char readings,
    /// decimal code point → comma-separated readings).
    pub fn from_tables(
        raw_phrases: HashMap<String, Vec<Vec<String>>>,
        raw_chars: HashMap<String, String>,
    ) -> Self {
        let mut phrases = HashMap::with_capacity(raw_phrases.len());
        let mut max_phrase_chars = 1;
        for (word, readings) in raw_phrases {
            let n = word.chars().count();
            if readings.len() != n {
                continue;
            }
            let syls: Option<Vec<Syl>> = readings
                .iter()
                .map(|r| r.first().and_then(|p| Syl::from_marked(p, Source::Phrase)))
                .collect();
            if let Some(syls) = syls {
                max_phrase_chars = max_phrase_chars.max(n);
                phrases.insert(word, syls);
            }
        }
        // Known mistakes in the phrase table that matter on the phone.
        for (word, readings) in PHRASE_FIXES {
            let syls: Vec<Syl> = readings
                .split(' ')
                .filter_map(|p| Syl::from_numbered(p, Source::Phrase))
                .collect();
            phrases.insert((*word).to_string(), syls);
        }
        let mut chars = HashMap::with_capacity(raw_chars.len());
        for (cp, readings) in raw_chars {
            let Some(c) = cp.parse::<u32>().ok().and_then(char::from_u32) else {
                continue;
            };
            if let Some(s) = readings
                .split(',')
                .next()
                .and_then(|p| Syl::from_marked(p, Source::Char))
            {
                chars.insert(c, s);
            }
        }
        Self {
            phrases,
            chars,
            max_phrase_chars,
        }
    }

    /// Number of phrases loaded (for diagnostics).
    pub fn phrase_count(&self) -> usize {
        self.phrases.len()
    }

    /// Pinyin of one segmented word (hanzi only; other characters are skipped).
    /// `prev`/`next` are the neighbouring characters in the clause, for the rule table.
    pub fn word(&self, word: &str, prev: Option<char>, next: Option<char>) -> Vec<(char, Syl)> {
        let chars: Vec<char> = word.chars().filter(|c| is_hanzi(*c)).collect();
        let mut out = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            // Longest phrase starting at i.
            let mut matched = 0;
            let longest = self.max_phrase_chars.min(chars.len() - i);
            for len in (2..=longest).rev() {
                let cand: String = chars[i..i + len].iter().collect();
                if let Some(syls) = self.phrases.get(&cand) {
                    out.extend(chars[i..i + len].iter().copied().zip(syls.iter().cloned()));
                    matched = len;
                    break;
                }
            }
            if matched > 0 {
                i += matched;
                continue;
            }
            let c = chars[i];
            let p = if i > 0 { Some(chars[i - 1]) } else { prev };
            let n = chars.get(i + 1).copied().or(next);
            let single_word = chars.len() == 1;
            if let Some(s) = self.char_reading(c, p, n, single_word, i == 0) {
                out.push((c, s));
            }
            i += 1;
        }
        out
    }

    /// Reading of a character no phrase covered: the rule table, else the most common reading.
    fn char_reading(
        &self,
        c: char,
        prev: Option<char>,
        next: Option<char>,
        single_word: bool,
        word_initial: bool,
    ) -> Option<Syl> {
        if let Some((base, tone)) = polyphone_rule(c, prev, next, single_word, word_initial) {
            return Some(Syl::new(base, tone, Source::Char));
        }
        self.chars.get(&c).cloned()
    }
}

/// Corrections to pypinyin's phrase table (its 还款 is hái kuǎn).
const PHRASE_FIXES: &[(&str, &str)] = &[
    ("还款", "huan2 kuan3"),
    ("还款日", "huan2 kuan3 ri4"),
    ("还上", "huan2 shang4"),
    // Erhua words: 儿 is the -r suffix (Baker labels it er5), not ér.
    ("这儿", "zhe4 er5"),
    ("那儿", "na4 er5"),
    ("哪儿", "na3 er5"),
    ("一点儿", "yi4 dian3 er5"),
    ("一会儿", "yi2 hui4 er5"),
];

/// Context rules for frequent polyphones when no phrase decides.
/// Returns toneless pinyin and tone.
fn polyphone_rule(
    c: char,
    prev: Option<char>,
    next: Option<char>,
    single_word: bool,
    word_initial: bool,
) -> Option<(&'static str, u8)> {
    let next_in = |set: &str| next.is_some_and(|n| set.contains(n));
    let prev_in = |set: &str| prev.is_some_and(|p| set.contains(p));
    let prev_hanzi = prev.is_some_and(is_hanzi);
    Some(match c {
        // Particles: neutral tone unless a phrase (了解, 的确, 得到) said otherwise.
        '了' => ("le", 5),
        // A lone 儿 after a word is the erhua suffix (一点儿 cut as 一点/儿).
        '儿' if (single_word || !word_initial) && prev_hanzi => ("er", 5),
        '的' => ("de", 5),
        '着' => ("zhe", 5),
        '过' if single_word && prev_hanzi && !next_in("来去了") => ("guo", 5),
        '地' if single_word && prev_hanzi && next.is_some_and(is_hanzi) => ("de", 5),
        '地' => ("di", 4),
        '得' if next_in("去走要有做花") && !prev_hanzi => ("dei", 3),
        '得' if single_word => ("de", 5),
        '还' if next_in("钱款给清贷债书") => ("huan", 2),
        '还' => ("hai", 2),
        '行' => ("xing", 2),
        '重' if next_in("新复来做试启装播拨写发") => ("chong", 2),
        '重' => ("zhong", 4),
        '长' if prev_in("校院局处科部行家班组队首省市县区董") => ("zhang", 3),
        '长' => ("chang", 2),
        '为' if prev_in("成作认称视变更") => ("wei", 2),
        '为' => ("wei", 4),
        '都' => ("dou", 1),
        '发' if prev_in("头理白毛") => ("fa", 4),
        '发' => ("fa", 1),
        '种' if next_in("树花菜地草田") => ("zhong", 4),
        '种' => ("zhong", 3),
        '没' => ("mei", 2),
        '和' => ("he", 2),
        '调' if next_in("整节理试皮和控价") => ("tiao", 2),
        '调' => ("diao", 4),
        '中' if prev_in("打猜射考命") => ("zhong", 4),
        '中' => ("zhong", 1),
        '好' if next_in("奇客学") => ("hao", 4),
        '好' => ("hao", 3),
        '要' => ("yao", 4),
        '会' => ("hui", 4),
        '只' if prev.is_some_and(|p| "一两几每这那".contains(p)) => ("zhi", 1),
        '只' => ("zhi", 3),
        '便' => ("bian", 4),
        '更' => ("geng", 4),
        '觉' => ("jue", 2),
        '数' if next_in("一下数清") => ("shu", 3),
        '数' => ("shu", 4),
        '少' => ("shao", 3),
        '空' => ("kong", 1),
        '差' => ("cha", 4),
        '当' => ("dang", 1),
        '应' => ("ying", 1),
        '那' => ("na", 4),
        '哪' => ("na", 3),
        '吗' => ("ma", 5),
        '么' => ("me", 5),
        '呢' => ("ne", 5),
        '吧' => ("ba", 5),
        '啊' => ("a", 5),
        '呀' => ("ya", 5),
        '嘛' => ("ma", 5),
        '们' => ("men", 5),
        '嗯' => ("en", 4),
        '喂' => ("wei", 4),
        '哦' => ("o", 4),
        '给' => ("gei", 3),
        '假' if next_in("期日") => ("jia", 4),
        '转' if next_in("接给到账") => ("zhuan", 3),
        '一' => ("yi", 1),
        '不' => ("bu", 4),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny table in pypinyin's format (the full one is tested in tests/tts_frontend.rs).
    fn dict() -> PinyinDict {
        let phrases: HashMap<String, Vec<Vec<String>>> =
            [("银行", vec!["yín", "háng"]), ("还款", vec!["hái", "kuǎn"])]
                .into_iter()
                .map(|(w, r)| {
                    (
                        w.to_string(),
                        r.into_iter().map(|p| vec![p.to_string()]).collect(),
                    )
                })
                .collect();
        let chars: HashMap<String, String> = [
            ('银', "yín"),
            ('行', "xíng,háng"),
            ('卡', "kǎ,qiǎ"),
            ('还', "hái,huán"),
            ('钱', "qián"),
            ('了', "le,liǎo"),
            ('重', "zhòng,chóng"),
            ('新', "xīn"),
        ]
        .into_iter()
        .map(|(c, r)| ((c as u32).to_string(), r.to_string()))
        .collect();
        PinyinDict::from_tables(phrases, chars)
    }

    fn read(d: &PinyinDict, w: &str) -> String {
        d.word(w, None, None)
            .iter()
            .map(|(_, s)| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn longest_phrase_then_characters() {
        let d = dict();
        assert_eq!(read(&d, "银行卡"), "yin2 hang2 ka3");
        // The correction table overrides pypinyin's 还款.
        assert_eq!(read(&d, "还款"), "huan2 kuan3");
    }

    #[test]
    fn rule_table_decides_lone_polyphones() {
        let d = dict();
        assert_eq!(read(&d, "还钱"), "huan2 qian2");
        assert_eq!(read(&d, "重新"), "chong2 xin1");
        assert_eq!(read(&d, "了"), "le5");
        assert_eq!(read(&d, "行"), "xing2");
    }
}
