//! Reading numbers aloud: cardinals (with 万/亿 grouping, 零 and 两), digit-by-digit
//! strings (幺 for 1 on the phone), decimals. Each reading comes with its exact pinyin so
//! later stages never have to guess what a number character means (一 in 一百 vs 十一).

use super::syllable::{Source, Syl};

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// A reading: the hanzi (for display and tests) and one syllable per character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub text: String,
    pub syls: Vec<Syl>,
}

/// Pinyin of a number character (as used in readings produced here).
fn number_char_pinyin(c: char) -> Option<(&'static str, u8)> {
    Some(match c {
        '零' => ("ling", 2),
        '一' => ("yi", 1),
        '幺' => ("yao", 1),
        '二' => ("er", 4),
        '两' => ("liang", 3),
        '三' => ("san", 1),
        '四' => ("si", 4),
        '五' => ("wu", 3),
        '六' => ("liu", 4),
        '七' => ("qi", 1),
        '八' => ("ba", 1),
        '九' => ("jiu", 3),
        '十' => ("shi", 2),
        '百' => ("bai", 3),
        '千' => ("qian", 1),
        '万' => ("wan", 4),
        '亿' => ("yi", 4),
        '点' => ("dian", 3),
        '负' => ("fu", 4),
        _ => return None,
    })
}

/// Builds a [`Reading`] from number hanzi. In cardinals a leading 一 before 百/千 is
/// yì and before 万/亿 yí (tone sandhi by the following tone); everywhere else 一 is yī.
fn reading(text: String, source: Source) -> Reading {
    let chars: Vec<char> = text.chars().collect();
    let mut syls = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        let Some((base, mut tone)) = number_char_pinyin(c) else {
            continue;
        };
        if c == '一' && source == Source::Number {
            let starts_group =
                i == 0 || matches!(chars[i - 1], '零' | '万' | '亿' | '负' | '千' | '百');
            match chars.get(i + 1) {
                Some('百') | Some('千') if starts_group => tone = 4,
                Some('万') | Some('亿') if starts_group => tone = 2,
                _ => {}
            }
        }
        syls.push(Syl::new(base, tone, source));
    }
    Reading { text, syls }
}

/// Cardinal hanzi for a non-negative integer written in ASCII digits (leading zeros ignored).
/// `liang`: read a leading 2 as 两 before 百/千/万/亿 (两千, 两万) — how amounts are said.
pub fn cardinal_hanzi(digits: &str, liang: bool) -> String {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return "零".to_string();
    }
    let ds: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    // Split into groups of four from the right: units, 万, 亿, 万亿.
    let mut groups: Vec<&[u8]> = Vec::new();
    let mut end = ds.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        groups.push(&ds[start..end]);
        end = start;
    }
    groups.reverse();
    let n = groups.len();
    let big = |idx_from_right: usize| match idx_from_right {
        0 => "",
        1 => "万",
        2 => "亿",
        3 => "万亿",
        _ => "",
    };
    let mut out = String::new();
    let mut pending_zero = false;
    for (gi, g) in groups.iter().enumerate() {
        let all_zero = g.iter().all(|&d| d == 0);
        if all_zero {
            pending_zero = !out.is_empty();
            continue;
        }
        let padded: Vec<u8> = std::iter::repeat_n(0u8, 4 - g.len())
            .chain(g.iter().copied())
            .collect();
        let units = ["千", "百", "十", ""];
        // A group that does not start with a thousands digit after a higher group needs 零.
        if !out.is_empty() && (pending_zero || padded[0] == 0) {
            out.push('零');
        }
        pending_zero = false;
        let mut zero_run = false;
        let mut started = false;
        for (pos, &d) in padded.iter().enumerate() {
            if d == 0 {
                if started {
                    zero_run = true;
                }
                continue;
            }
            if zero_run {
                out.push('零');
                zero_run = false;
            }
            let is_leading = out.is_empty();
            if d == 1 && pos == 2 && is_leading {
                // 10-19 at the very start read 十, 十五 (not 一十五).
            } else if d == 2 && liang && is_leading && pos <= 1 {
                out.push('两');
            } else if d == 2 && liang && is_leading && pos == 3 && gi + 1 < n {
                // 2万, 2亿: 两万, 两亿.
                out.push('两');
            } else {
                out.push(DIGITS[d as usize]);
            }
            out.push_str(units[pos]);
            started = true;
        }
        out.push_str(big(n - 1 - gi));
    }
    out
}

/// Cardinal reading of an integer, e.g. `"2000"` → 两千.
pub fn cardinal(digits: &str) -> Reading {
    reading(cardinal_hanzi(digits, true), Source::Number)
}

/// Cardinal reading with 二 kept (ordinals, months, days, 第2 → 第二).
pub fn cardinal_er(digits: &str) -> Reading {
    reading(cardinal_hanzi(digits, false), Source::Number)
}

/// The count word for exactly 2 before a measure word: 两.
pub fn liang() -> Reading {
    reading("两".to_string(), Source::Number)
}

/// Digit by digit. `yao`: 1 is read 幺 (phone numbers, codes), otherwise 一 (years).
pub fn digits(s: &str, yao: bool) -> Reading {
    let text: String = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| {
            if b == b'1' && yao {
                '幺'
            } else {
                DIGITS[(b - b'0') as usize]
            }
        })
        .collect();
    reading(text, Source::Spelled)
}

/// A decimal like `3.14` → 三点一四 (integer part cardinal, fraction digit by digit).
pub fn decimal(int_part: &str, frac_part: &str) -> Reading {
    let mut r = cardinal(int_part);
    let frac = digits(frac_part, false);
    r.text.push('点');
    r.syls.push(Syl::new("dian", 3, Source::Number));
    r.text.push_str(&frac.text);
    r.syls.extend(
        frac.syls
            .into_iter()
            .map(|s| Syl::new(&s.base, s.tone, Source::Number)),
    );
    r
}

/// A number string that may carry a fraction (`12`, `3.5`).
pub fn cardinal_or_decimal(s: &str) -> Reading {
    match s.split_once('.') {
        Some((i, f)) if !f.is_empty() => decimal(i, f),
        _ => cardinal(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        cardinal(s).text
    }

    #[test]
    fn cardinals() {
        assert_eq!(c("0"), "零");
        assert_eq!(c("7"), "七");
        assert_eq!(c("10"), "十");
        assert_eq!(c("15"), "十五");
        assert_eq!(c("20"), "二十");
        assert_eq!(c("110"), "一百一十");
        assert_eq!(c("1001"), "一千零一");
        assert_eq!(c("1010"), "一千零一十");
        assert_eq!(c("2000"), "两千");
        assert_eq!(c("200"), "两百");
        assert_eq!(c("1200"), "一千二百");
        assert_eq!(c("20000"), "两万");
        assert_eq!(c("22000"), "两万二千");
        assert_eq!(c("100000"), "十万");
        assert_eq!(c("105000"), "十万五千");
        assert_eq!(c("1000001"), "一百万零一");
        assert_eq!(c("100000000"), "一亿");
        assert_eq!(c("350000000"), "三亿五千万");
        assert_eq!(c("10050"), "一万零五十");
        assert_eq!(cardinal_er("2").text, "二");
        assert_eq!(cardinal_er("12").text, "十二");
    }

    #[test]
    fn one_in_cardinals_gets_its_sandhi() {
        let tones = |s: &str| {
            cardinal(s)
                .syls
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(tones("100"), "yi4 bai3");
        assert_eq!(tones("10000"), "yi2 wan4");
        assert_eq!(tones("11"), "shi2 yi1");
        assert_eq!(tones("101"), "yi4 bai3 ling2 yi1");
    }

    #[test]
    fn digit_strings_and_decimals() {
        assert_eq!(digits("13800", true).text, "幺三八零零");
        assert_eq!(digits("2025", false).text, "二零二五");
        assert_eq!(decimal("3", "14").text, "三点一四");
        assert_eq!(cardinal_or_decimal("0.5").text, "零点五");
    }
}
