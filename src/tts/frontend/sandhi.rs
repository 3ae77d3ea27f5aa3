//! Tone sandhi on the surface form.
//!
//! The Baker corpus that trained the voice is labelled with the tones actually spoken
//! (卡尔普 is `ka2 er2 pu3`), so the model expects sandhi applied: third-tone sandhi,
//! and 一/不 changing with the following tone. TensorFlowTTS's inference processor skips
//! this step; doing it here matches the training labels.

use super::syllable::{Source, Syl};

/// A syllable with the character it reads (None for spelled letters).
pub type Unit = (Option<char>, Syl);

const NUMBER_CHARS: &str = "零一二三四五六七八九十两";

/// Applies 不, 一 and third-tone sandhi across the words of one clause, in place.
pub fn apply(words: &mut [Vec<Unit>]) {
    let positions: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .flat_map(|(w, units)| (0..units.len()).map(move |i| (w, i)))
        .collect();
    let orig: Vec<(Option<char>, u8, Source)> = positions
        .iter()
        .map(|&(w, i)| (words[w][i].0, words[w][i].1.tone, words[w][i].1.source))
        .collect();
    let n = positions.len();
    for k in 0..n {
        let (ch, tone, source) = orig[k];
        let prev_char = if k > 0 { orig[k - 1].0 } else { None };
        let next = orig.get(k + 1).copied();
        let next_char = next.and_then(|x| x.0);
        let next_tone = next.map(|x| x.1);
        let (w, i) = positions[k];
        let new_tone = match (ch, source) {
            (Some('不'), Source::Char | Source::Phrase) if tone != 5 => {
                if prev_char.is_some() && prev_char == next_char {
                    // A-not-A questions (能不能, 是不是): 不 is neutral.
                    Some(5)
                } else if next_tone == Some(4) {
                    Some(2)
                } else {
                    Some(4)
                }
            }
            (Some('一'), Source::Char) => {
                let ordinal = prev_char
                    .is_some_and(|p| NUMBER_CHARS.contains(p) || "第期周拜".contains(p))
                    || next_char.is_some_and(|c| NUMBER_CHARS.contains(c) || "月号日".contains(c))
                    || next.is_none()
                    || next.is_some_and(|x| x.2 == Source::Spelled || x.2 == Source::Number);
                if ordinal {
                    Some(1)
                } else if prev_char.is_some() && prev_char == next_char {
                    Some(5)
                } else if next_tone == Some(4) {
                    Some(2)
                } else {
                    Some(4)
                }
            }
            _ => None,
        };
        if let Some(t) = new_tone {
            words[w][i].1.tone = t;
        }
    }
    // Third-tone sandhi from the tones after 一/不 (which are never tone 3).
    let tones: Vec<u8> = positions.iter().map(|&(w, i)| words[w][i].1.tone).collect();
    for k in 0..n.saturating_sub(1) {
        let (w1, i1) = positions[k];
        let (w2, _) = positions[k + 1];
        let spelled = orig[k].2 == Source::Spelled || orig[k + 1].2 == Source::Spelled;
        let close = w1 == w2 || words[w1].len() == 1 || words[w2].len() == 1;
        if tones[k] == 3 && tones[k + 1] == 3 && close && !spelled {
            words[w1][i1].1.tone = 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(items: &[(char, &str, u8, Source)]) -> Vec<Unit> {
        items
            .iter()
            .map(|&(c, b, t, s)| (Some(c), Syl::new(b, t, s)))
            .collect()
    }

    fn tones(words: &[Vec<Unit>]) -> Vec<String> {
        words.iter().flatten().map(|(_, s)| s.to_string()).collect()
    }

    #[test]
    fn third_tone_within_word_and_with_monosyllables() {
        use Source::*;
        let mut words = vec![w(&[('你', "ni", 3, Phrase), ('好', "hao", 3, Phrase)])];
        apply(&mut words);
        assert_eq!(tones(&words), ["ni2", "hao3"]);
        let mut words = vec![
            w(&[('我', "wo", 3, Char)]),
            w(&[('也', "ye", 3, Char)]),
            w(&[('想', "xiang", 3, Char)]),
        ];
        apply(&mut words);
        assert_eq!(tones(&words), ["wo2", "ye2", "xiang3"]);
    }

    #[test]
    fn bu_and_yi() {
        use Source::*;
        let mut words = vec![w(&[('不', "bu", 4, Char)]), w(&[('去', "qu", 4, Char)])];
        apply(&mut words);
        assert_eq!(tones(&words), ["bu2", "qu4"]);
        let mut words = vec![w(&[('一', "yi", 1, Char)]), w(&[('天', "tian", 1, Char)])];
        apply(&mut words);
        assert_eq!(tones(&words), ["yi4", "tian1"]);
        let mut words = vec![w(&[('一', "yi", 1, Char)]), w(&[('次', "ci", 4, Char)])];
        apply(&mut words);
        assert_eq!(tones(&words), ["yi2", "ci4"]);
        let mut words = vec![w(&[
            ('看', "kan", 4, Char),
            ('一', "yi", 1, Char),
            ('看', "kan", 4, Char),
        ])];
        apply(&mut words);
        assert_eq!(tones(&words), ["kan4", "yi5", "kan4"]);
        let mut words = vec![
            w(&[('第', "di", 4, Char), ('一', "yi", 1, Char)]),
            w(&[('次', "ci", 4, Char)]),
        ];
        apply(&mut words);
        assert_eq!(tones(&words), ["di4", "yi1", "ci4"]);
    }
}
