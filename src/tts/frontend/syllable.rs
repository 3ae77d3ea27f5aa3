//! One Mandarin syllable as the front-end carries it: toneless pinyin plus a tone number,
//! and where the reading came from (so tone sandhi knows what it may still change).

use std::fmt;

/// Where a syllable's reading was decided. Sandhi treats the sources differently:
/// phrase-dictionary readings already encode the lexical tone of 一/不 in that word,
/// number readings fix 一 themselves, and spelled-out digits/letters are never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From pypinyin's phrase table (a multi-character word).
    Phrase,
    /// From the single-character table or the polyphone rule table.
    Char,
    /// A cardinal/ordinal/time number reading: 3-3 sandhi applies, 一 is already final.
    Number,
    /// Digit-by-digit readings and spelled letters: tones are final.
    Spelled,
}

/// A syllable: `base` is toneless pinyin with ü written `v` (`lv`, `nve`), tone 1-5 (5 = neutral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syl {
    pub base: String,
    pub tone: u8,
    pub source: Source,
}

impl Syl {
    pub fn new(base: &str, tone: u8, source: Source) -> Self {
        Self {
            base: base.to_string(),
            tone,
            source,
        }
    }

    /// Parses tone-number pinyin such as `zhong1`, `le5`, `lv4` (no digit = neutral tone).
    pub fn from_numbered(s: &str, source: Source) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (base, tone) = match s.chars().last() {
            Some(d @ '1'..='5') => (&s[..s.len() - 1], d as u8 - b'0'),
            _ => (s, 5),
        };
        if base.is_empty() || !base.chars().all(|c| c.is_ascii_lowercase()) {
            return None;
        }
        Some(Self::new(base, tone, source))
    }

    /// Parses pypinyin's tone-marked pinyin (`yín`, `lǜ`, `er`, `ń`) into base + tone.
    /// A syllable without a mark is neutral (tone 5), as pypinyin's neutral-tone style does.
    pub fn from_marked(s: &str, source: Source) -> Option<Self> {
        let mut base = String::with_capacity(s.len());
        let mut tone = 5u8;
        for c in s.trim().chars() {
            let (plain, t) = unmark(c);
            match plain {
                Some(p) => base.push_str(p),
                None => return None,
            }
            if t != 0 {
                tone = t;
            }
        }
        if base.is_empty() {
            return None;
        }
        Some(Self { base, tone, source })
    }
}

impl fmt::Display for Syl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.base, self.tone)
    }
}

/// Maps one character of marked pinyin to its plain letters and tone (0 = no mark).
fn unmark(c: char) -> (Option<&'static str>, u8) {
    let r = |p: &'static str, t: u8| (Some(p), t);
    match c {
        'a' => r("a", 0),
        'ā' => r("a", 1),
        'á' => r("a", 2),
        'ǎ' => r("a", 3),
        'à' => r("a", 4),
        'e' => r("e", 0),
        'ē' => r("e", 1),
        'é' => r("e", 2),
        'ě' => r("e", 3),
        'è' => r("e", 4),
        'i' => r("i", 0),
        'ī' => r("i", 1),
        'í' => r("i", 2),
        'ǐ' => r("i", 3),
        'ì' => r("i", 4),
        'o' => r("o", 0),
        'ō' => r("o", 1),
        'ó' => r("o", 2),
        'ǒ' => r("o", 3),
        'ò' => r("o", 4),
        'u' => r("u", 0),
        'ū' => r("u", 1),
        'ú' => r("u", 2),
        'ǔ' => r("u", 3),
        'ù' => r("u", 4),
        'ü' => r("v", 0),
        'ǖ' => r("v", 1),
        'ǘ' => r("v", 2),
        'ǚ' => r("v", 3),
        'ǜ' => r("v", 4),
        'ń' => r("n", 2),
        'ň' => r("n", 3),
        'ǹ' => r("n", 4),
        'ḿ' => r("m", 2),
        'ê' => r("e", 0),
        // Combining tone marks (pypinyin writes m̀, ê̄ with them).
        '\u{304}' => (Some(""), 1),
        '\u{301}' => (Some(""), 2),
        '\u{30c}' => (Some(""), 3),
        '\u{300}' => (Some(""), 4),
        c if c.is_ascii_lowercase() => {
            // Every other ASCII letter maps to itself; a static table avoids allocation.
            const LETTERS: [&str; 26] = [
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
                "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
            ];
            (Some(LETTERS[(c as u8 - b'a') as usize]), 0)
        }
        _ => (None, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marked_pinyin() {
        let s = |x| Syl::from_marked(x, Source::Char).map(|s| s.to_string());
        assert_eq!(s("yín").as_deref(), Some("yin2"));
        assert_eq!(s("lǜ").as_deref(), Some("lv4"));
        assert_eq!(s("er").as_deref(), Some("er5"));
        assert_eq!(s("zhuāng").as_deref(), Some("zhuang1"));
        assert_eq!(s("ń").as_deref(), Some("n2"));
        assert_eq!(s("x1"), None);
    }

    #[test]
    fn parses_numbered_pinyin() {
        let s = Syl::from_numbered("zhong1", Source::Char).expect("valid");
        assert_eq!((s.base.as_str(), s.tone), ("zhong", 1));
        let s = Syl::from_numbered("de", Source::Char).expect("valid");
        assert_eq!(s.tone, 5);
        assert!(Syl::from_numbered("", Source::Char).is_none());
    }
}
