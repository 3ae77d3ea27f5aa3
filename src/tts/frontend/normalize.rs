//! Text normalisation: turns digits, symbols and Latin letters into what a Mandarin
//! speaker says, before segmentation and pinyin.
//!
//! The output is a list of [`Piece`]s: plain Chinese text, or a reading whose pinyin is
//! already decided (numbers, spelled letters). Keeping the pinyin of numbers avoids
//! re-guessing later whether 一 is yī (十一, 一月, 幺 on phones) or yì (一百).
//!
//! Rules are tried at the leftmost position first; at the same position the earlier rule
//! in [`RULES`] wins, and a rule may decline (return `None`) after checking context.

use std::sync::LazyLock;

use regex::{Captures, Regex};

use super::numbers::{self, Reading};
use super::syllable::{Source, Syl};

/// A stretch of normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Chinese text (and punctuation) for segmentation and pinyin lookup.
    Text(String),
    /// A reading with fixed pinyin: numbers, digit strings, spelled letters.
    Said(Reading),
}

impl Piece {
    pub fn text(&self) -> &str {
        match self {
            Piece::Text(t) => t,
            Piece::Said(r) => &r.text,
        }
    }
}

fn text(s: &str) -> Piece {
    Piece::Text(s.to_string())
}

/// Normalises `input` into pieces (see module docs).
pub fn normalize(input: &str) -> Vec<Piece> {
    let s = to_halfwidth(input);
    let mut out: Vec<Piece> = Vec::new();
    let mut pos = 0usize;
    while pos < s.len() {
        // Candidates: the leftmost match of each rule from `pos`.
        let mut cands: Vec<(usize, usize, Captures)> = RULES
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.re.captures_at(&s, pos)
                    .map(|c| (c.get(0).map_or(0, |m| m.start()), i, c))
            })
            .collect();
        if cands.is_empty() {
            push_text(&mut out, &s[pos..]);
            break;
        }
        cands.sort_by_key(|(start, i, _)| (*start, *i));
        let mut done = false;
        for (start, i, caps) in &cands {
            let ctx = Ctx {
                caps,
                before: &s[..*start],
                after: &s[caps.get(0).map_or(*start, |m| m.end())..],
            };
            if let Some((pieces, end)) = (RULES[*i].apply)(&ctx) {
                push_text(&mut out, &s[pos..*start]);
                for p in pieces {
                    match p {
                        Piece::Text(t) => push_text(&mut out, &t),
                        said => out.push(said),
                    }
                }
                // `end` is relative to the match start when a rule consumes less than it matched.
                let consumed = start + end;
                pos = if consumed > pos {
                    consumed
                } else {
                    next_char(&s, pos)
                };
                done = true;
                break;
            }
        }
        if !done {
            // Every candidate declined: move past the first candidate's first character.
            let first = cands[0].0;
            let stop = next_char(&s, first.max(pos));
            push_text(&mut out, &s[pos..stop]);
            pos = stop;
        }
    }
    out
}

/// The normalised text as one string (numbers and symbols in hanzi, letters uppercase).
pub fn normalize_to_string(input: &str) -> String {
    normalize(input).iter().map(Piece::text).collect()
}

fn next_char(s: &str, pos: usize) -> usize {
    s[pos..]
        .chars()
        .next()
        .map_or(s.len(), |c| pos + c.len_utf8())
}

fn push_text(out: &mut Vec<Piece>, t: &str) {
    if t.is_empty() {
        return;
    }
    if let Some(Piece::Text(last)) = out.last_mut() {
        last.push_str(t);
    } else {
        out.push(Piece::Text(t.to_string()));
    }
}

/// Full-width digits, letters and ASCII symbols to half-width; Chinese clause
/// punctuation (，。！？：；) stays as it is.
fn to_halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '！' | '（' | '）' | '，' | '：' | '；' | '？' => c,
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

struct Ctx<'a, 'c> {
    caps: &'c Captures<'a>,
    before: &'a str,
    after: &'a str,
}

impl Ctx<'_, '_> {
    fn get(&self, i: usize) -> &str {
        self.caps.get(i).map_or("", |m| m.as_str())
    }
    /// Length of the whole match (the usual amount consumed).
    fn len(&self) -> usize {
        self.caps.get(0).map_or(0, |m| m.len())
    }
    fn prev_char(&self) -> Option<char> {
        self.before.chars().next_back()
    }
    fn next_char(&self) -> Option<char> {
        self.after.chars().next()
    }
}

type Apply = fn(&Ctx) -> Option<(Vec<Piece>, usize)>;

struct Rule {
    re: Regex,
    apply: Apply,
}

fn rule(pattern: &str, apply: Apply) -> Rule {
    Rule {
        // The patterns are constants checked by the unit tests.
        re: Regex::new(pattern).unwrap_or_else(|e| panic!("bad built-in pattern {pattern}: {e}")),
        apply,
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+",
            email,
        ),
        rule(
            r"(?:\+?86[\s\-]?)?1[3-9]\d[\s\-]?\d{4}[\s\-]?\d{4}|0\d{2,3}[\s\-]?\d{7,8}|[48]00[\s\-]?\d{3}[\s\-]?\d{4}",
            phone,
        ),
        rule(
            r"(\d{4})\s*(?:年|-|/|\.)\s*(\d{1,2})\s*(?:月|-|/|\.)\s*(\d{1,2})\s*(日|号)?",
            date_ymd,
        ),
        rule(r"(\d{4})年", year),
        rule(r"(\d{1,2})月(?:(\d{1,2})(日|号))?", month_day),
        rule(r"(\d{1,2})(日|号)", day),
        rule(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", clock_time),
        rule(r"(\d{1,2})(点|时)", hour),
        rule(r"(\d+(?:\.\d+)?)\s*[%％]", percent),
        rule(r"([¥￥$])\s*(\d+(?:\.\d+)?)", currency),
        rule(r"(\d+(?:\.\d+)?)\s*(?:℃|°C|°)", temperature),
        rule(r"(\d+)/(\d+)", fraction),
        rule(
            r"(\d+(?:\.\d+)?)\s*(km|kg|cm|mm|ml|mg|GB|MB|KB|TB|min|m|g|h|s)",
            unit,
        ),
        rule(r"(\d+)\.(\d+)", decimal),
        rule(r"\d{1,3}(?:,\d{3})+|\d+", integer),
        rule(r"[\-~～—–]+\s*", dash),
        rule(
            r"/\s*(月|天|日|年|人|次|小时|分钟|周|个|件|斤|公斤|度|台|张)",
            per_unit,
        ),
        rule(r"<=|>=|≤|≥|<|>|=|\+|×|÷|@|#|\*|&", symbol),
        rule(r"[A-Za-z]+", letters),
    ]
});

/// How a Latin letter is said in Chinese speech, as syllables the voice knows.
fn letter_syls(c: char) -> &'static [(&'static str, u8)] {
    match c.to_ascii_uppercase() {
        'A' => &[("ei", 1)],
        'B' => &[("bi", 4)],
        'C' => &[("xi", 1)],
        'D' => &[("di", 4)],
        'E' => &[("yi", 1)],
        'F' => &[("ai", 4), ("fu", 5)],
        'G' => &[("ji", 4)],
        'H' => &[("ai", 4), ("qi", 1)],
        'I' => &[("ai", 4)],
        'J' => &[("jie", 4)],
        'K' => &[("kai", 4)],
        'L' => &[("ai", 4), ("le", 5)],
        'M' => &[("ai", 4), ("mu", 5)],
        'N' => &[("en", 1)],
        'O' => &[("ou", 1)],
        'P' => &[("pi", 1)],
        'Q' => &[("qiu", 1)],
        'R' => &[("a", 1), ("er", 3)],
        'S' => &[("ai", 4), ("si", 1)],
        'T' => &[("ti", 1)],
        'U' => &[("you", 1)],
        'V' => &[("wei", 1)],
        'W' => &[("da", 2), ("bu", 5), ("liu", 1)],
        'X' => &[("ai", 4), ("ke", 4), ("si", 1)],
        'Y' => &[("wai", 1)],
        'Z' => &[("zei", 4)],
        _ => &[],
    }
}

/// Letters spelled one by one (`vip` → V I P).
fn spell_letters(s: &str) -> Reading {
    let mut text = String::new();
    let mut syls = Vec::new();
    for c in s.chars().filter(char::is_ascii_alphabetic) {
        text.push(c.to_ascii_uppercase());
        syls.extend(
            letter_syls(c)
                .iter()
                .map(|(b, t)| Syl::new(b, *t, Source::Spelled)),
        );
    }
    Reading { text, syls }
}

fn email(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let mut out = Vec::new();
    let s = c.get(0);
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<Piece>| {
        if run.is_empty() {
            return;
        }
        if run.as_bytes()[0].is_ascii_digit() {
            out.push(Piece::Said(numbers::digits(run, true)));
        } else {
            out.push(Piece::Said(spell_letters(run)));
        }
        run.clear();
    };
    for ch in s.chars() {
        let same_kind = run
            .chars()
            .next()
            .is_some_and(|r| r.is_ascii_digit() == ch.is_ascii_digit());
        if ch.is_ascii_alphanumeric() {
            if !run.is_empty() && !same_kind {
                flush(&mut run, &mut out);
            }
            run.push(ch);
            continue;
        }
        flush(&mut run, &mut out);
        out.push(text(match ch {
            '@' => "艾特",
            '.' => "点",
            '_' => "下划线",
            '-' => "杠",
            '+' => "加",
            _ => "",
        }));
    }
    flush(&mut run, &mut out);
    Some((out, c.len()))
}

fn phone(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    if c.prev_char().is_some_and(|p| p.is_ascii_digit())
        || c.next_char().is_some_and(|n| n.is_ascii_digit())
    {
        return None;
    }
    let raw = c.get(0);
    let mut digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let mut out = Vec::new();
    if (raw.starts_with('+') || raw.starts_with("86")) && digits.len() == 13 {
        out.push(text("加"));
        out.push(Piece::Said(numbers::digits("86", true)));
        digits = digits[2..].to_string();
    }
    let groups: &[usize] = if digits.starts_with('1') && digits.len() == 11 {
        &[3, 4, 4]
    } else if (digits.starts_with("400") || digits.starts_with("800")) && digits.len() == 10 {
        &[3, 3, 4]
    } else if digits.starts_with("01") || digits.starts_with("02") {
        if digits.len() == 11 {
            &[3, 4, 4]
        } else {
            &[3, 3, 4]
        }
    } else if digits.len() == 12 {
        &[4, 4, 4]
    } else {
        &[4, 3, 4]
    };
    let mut at = 0;
    for &g in groups {
        let end = (at + g).min(digits.len());
        if at < end {
            out.push(Piece::Said(numbers::digits(&digits[at..end], true)));
        }
        at = end;
    }
    if at < digits.len() {
        out.push(Piece::Said(numbers::digits(&digits[at..], true)));
    }
    Some((out, c.len()))
}

fn date_ymd(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let month: u32 = c.get(2).parse().ok()?;
    let day: u32 = c.get(3).parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let suffix = match c.get(4) {
        "" => "日",
        s => s,
    };
    Some((
        vec![
            Piece::Said(numbers::digits(c.get(1), false)),
            text("年"),
            Piece::Said(numbers::cardinal_er(c.get(2))),
            text("月"),
            Piece::Said(numbers::cardinal_er(c.get(3))),
            text(suffix),
        ],
        c.len(),
    ))
}

fn year(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    Some((
        vec![Piece::Said(numbers::digits(c.get(1), false)), text("年")],
        c.len(),
    ))
}

fn month_day(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let month: u32 = c.get(1).parse().ok()?;
    if !(1..=12).contains(&month) || c.prev_char().is_some_and(|p| p.is_ascii_digit()) {
        return None;
    }
    let mut out = vec![Piece::Said(numbers::cardinal_er(c.get(1))), text("月")];
    if !c.get(2).is_empty() {
        let day: u32 = c.get(2).parse().ok()?;
        if !(1..=31).contains(&day) {
            return None;
        }
        out.push(Piece::Said(numbers::cardinal_er(c.get(2))));
        out.push(text(c.get(3)));
    }
    Some((out, c.len()))
}

fn day(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let d: u32 = c.get(1).parse().ok()?;
    if !(1..=31).contains(&d) || c.prev_char().is_some_and(|p| p.is_ascii_digit()) {
        return None;
    }
    Some((
        vec![Piece::Said(numbers::cardinal_er(c.get(1))), text(c.get(2))],
        c.len(),
    ))
}

/// The hour as said before 点: 两点 for 2, 零点 for 0.
fn hour_reading(h: u32, digits: &str) -> Reading {
    if h == 2 {
        numbers::liang()
    } else {
        numbers::cardinal_er(digits)
    }
}

fn clock_time(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let h: u32 = c.get(1).parse().ok()?;
    let m: u32 = c.get(2).parse().ok()?;
    if h > 24 || m > 59 || c.prev_char().is_some_and(|p| p.is_ascii_digit()) {
        return None;
    }
    let mut out = vec![Piece::Said(hour_reading(h, c.get(1))), text("点")];
    if m > 0 {
        out.extend(minutes_or_seconds(m, c.get(2)));
        out.push(text("分"));
    }
    if let Ok(sec) = c.get(3).parse::<u32>() {
        if sec > 59 {
            return None;
        }
        if sec > 0 {
            if m == 0 {
                out.push(Piece::Said(numbers::cardinal_er("0")));
                out.push(text("分"));
            }
            out.extend(minutes_or_seconds(sec, c.get(3)));
            out.push(text("秒"));
        }
    }
    Some((out, c.len()))
}

/// 05 → 零五, 30 → 三十.
fn minutes_or_seconds(v: u32, digits: &str) -> Vec<Piece> {
    if v < 10 && digits.len() == 2 {
        vec![Piece::Said(numbers::digits(digits, false))]
    } else {
        vec![Piece::Said(numbers::cardinal_er(digits))]
    }
}

fn hour(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let h: u32 = c.get(1).parse().ok()?;
    if h > 24
        || c.prev_char()
            .is_some_and(|p| p.is_ascii_digit() || p == '.')
    {
        return None;
    }
    Some((
        vec![Piece::Said(hour_reading(h, c.get(1))), text(c.get(2))],
        c.len(),
    ))
}

fn percent(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    Some((
        vec![
            text("百分之"),
            Piece::Said(numbers::cardinal_or_decimal(c.get(1))),
        ],
        c.len(),
    ))
}

fn currency(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let unit = if c.get(1) == "$" { "美元" } else { "元" };
    Some((
        vec![
            Piece::Said(numbers::cardinal_or_decimal(c.get(2))),
            text(unit),
        ],
        c.len(),
    ))
}

fn temperature(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    Some((
        vec![
            Piece::Said(numbers::cardinal_or_decimal(c.get(1))),
            text("摄氏度"),
        ],
        c.len(),
    ))
}

fn fraction(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let den: u64 = c.get(2).parse().ok()?;
    if den == 0 {
        return None;
    }
    Some((
        vec![
            Piece::Said(numbers::cardinal_er(c.get(2))),
            text("分之"),
            Piece::Said(numbers::cardinal_er(c.get(1))),
        ],
        c.len(),
    ))
}

fn unit(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    if c.next_char().is_some_and(|n| n.is_ascii_alphabetic()) {
        return None;
    }
    let name = match c.get(2) {
        "km" => "公里",
        "kg" => "公斤",
        "cm" => "厘米",
        "mm" => "毫米",
        "ml" => "毫升",
        "mg" => "毫克",
        "m" => "米",
        "g" => "克",
        "h" => "小时",
        "min" => "分钟",
        "s" => "秒",
        "GB" | "MB" | "KB" | "TB" => {
            let letter = &c.get(2)[..1];
            return Some((
                vec![
                    Piece::Said(numbers::cardinal_or_decimal(c.get(1))),
                    Piece::Said(spell_letters(letter)),
                ],
                c.len(),
            ));
        }
        _ => return None,
    };
    Some((
        vec![
            Piece::Said(numbers::cardinal_or_decimal(c.get(1))),
            text(name),
        ],
        c.len(),
    ))
}

fn decimal(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    Some((
        vec![Piece::Said(numbers::decimal(c.get(1), c.get(2)))],
        c.len(),
    ))
}

/// Words after which a number is an identifier read digit by digit.
const ID_KEYWORDS: &[&str] = &[
    "号码",
    "电话",
    "手机",
    "单号",
    "编号",
    "工号",
    "尾号",
    "验证码",
    "账号",
    "帐号",
    "卡号",
    "分机",
    "房间",
    "密码",
    "代码",
    "邮编",
    "身份证",
    "车牌",
    "航班",
    "车次",
    "QQ",
    "qq",
    "转",
];

/// Measure words and units after which the count 2 is 两 and a long number is an amount.
const MEASURES: &[&str] = &[
    "个", "位", "次", "天", "件", "张", "种", "条", "台", "份", "本", "小时", "分钟", "秒钟", "周",
    "年", "岁", "斤", "公斤", "块", "米", "公里", "家", "间", "遍", "趟", "杯", "瓶", "辆", "名",
    "人", "样", "层", "项", "笔", "部", "倍", "口", "只", "双", "对", "套", "把", "节", "门", "页",
    "句", "元", "毛", "星期", "礼拜", "万", "亿", "千", "百", "期", "户", "栋",
];

fn integer(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let grouped = c.get(0);
    if grouped.contains(',') {
        // Thousands separators: always an amount.
        let digits: String = grouped.chars().filter(char::is_ascii_digit).collect();
        return Some((vec![Piece::Said(numbers::cardinal(&digits))], c.len()));
    }
    let s = grouped;
    let before = c
        .before
        .trim_end_matches(|ch: char| ch.is_whitespace() || "是为:：#".contains(ch));
    let keyword = ID_KEYWORDS.iter().any(|k| before.ends_with(k));
    let measure = MEASURES.iter().any(|m| c.after.starts_with(m));
    // Room numbers are read digit by digit: 302室 → 三零二室.
    let room = c.after.starts_with('室') || c.after.starts_with("号房");
    let reading = if keyword
        || (s.len() > 1 && s.starts_with('0'))
        || (s.len() >= 7 && !measure)
        || s.len() > 16
        || (room && s.len() >= 3)
    {
        numbers::digits(s, true)
    } else if c.prev_char() == Some('第') {
        numbers::cardinal_er(s)
    } else if s == "1" && measure {
        // A count of one before a measure word takes 一's tone sandhi (一天 yì, 一个 yí),
        // so it goes on as text for the sandhi stage.
        return Some((vec![text("一")], c.len()));
    } else if s.trim_start_matches('0') == "2" && measure {
        numbers::liang()
    } else if s.trim_start_matches('0') == "2" {
        numbers::cardinal_er(s)
    } else {
        numbers::cardinal(s)
    };
    Some((vec![Piece::Said(reading)], c.len()))
}

fn dash(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let prev = c.before.trim_end().chars().next_back();
    let next = c.after.chars().next();
    let dash = c.get(0).trim();
    let prev_num = prev.is_some_and(|p| p.is_ascii_digit() || p == '%');
    let next_num = next.is_some_and(|n| n.is_ascii_digit());
    if prev_num && next_num {
        return Some((vec![text("到")], c.len()));
    }
    let hanzi = |ch: Option<char>| ch.is_some_and(is_hanzi);
    if (dash.contains('~') || dash.contains('～')) && hanzi(prev) && hanzi(next) {
        return Some((vec![text("到")], c.len()));
    }
    if next_num && dash == "-" && !prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        return Some((vec![text("负")], c.len()));
    }
    None
}

/// `50元/月` → 五十元每月.
fn per_unit(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    Some((vec![text("每"), text(c.get(1))], c.len()))
}

fn symbol(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let word = match c.get(0) {
        "<=" | "≤" => "小于等于",
        ">=" | "≥" => "大于等于",
        "<" => "小于",
        ">" => "大于",
        "=" => "等于",
        "+" => "加",
        "×" => "乘",
        "÷" => "除以",
        "@" => "艾特",
        "#" => "井号",
        "*" => "星号",
        "&" => "和",
        _ => return None,
    };
    Some((vec![text(word)], c.len()))
}

fn letters(c: &Ctx) -> Option<(Vec<Piece>, usize)> {
    let s = c.get(0);
    if s.eq_ignore_ascii_case("wifi") {
        return Some((
            vec![Piece::Said(Reading {
                text: "WIFI".to_string(),
                syls: vec![
                    Syl::new("wai", 1, Source::Spelled),
                    Syl::new("fei", 1, Source::Spelled),
                ],
            })],
            c.len(),
        ));
    }
    if s.eq_ignore_ascii_case("ok") {
        return Some((
            vec![Piece::Said(Reading {
                text: "OK".to_string(),
                syls: vec![
                    Syl::new("ou", 1, Source::Spelled),
                    Syl::new("kei", 4, Source::Spelled),
                ],
            })],
            c.len(),
        ));
    }
    Some((vec![Piece::Said(spell_letters(s))], c.len()))
}

/// CJK unified ideographs (the range the voice can read).
pub fn is_hanzi(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_to_string(s)
    }

    fn said_pinyin(s: &str) -> Vec<String> {
        normalize(s)
            .iter()
            .filter_map(|p| match p {
                Piece::Said(r) => Some(
                    r.syls
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                Piece::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn patterns_compile() {
        assert!(RULES.len() > 10);
    }

    #[test]
    fn dates() {
        assert_eq!(n("2025年1月1日"), "二零二五年一月一日");
        assert_eq!(n("2025-01-01"), "二零二五年一月一日");
        assert_eq!(n("2024/12/31"), "二零二四年十二月三十一日");
        assert_eq!(n("3月15号"), "三月十五号");
        assert_eq!(n("1998年"), "一九九八年");
        assert_eq!(n("12月"), "十二月");
        // 一 in a date is yī, never yì.
        assert_eq!(said_pinyin("1月1日"), vec!["yi1", "yi1"]);
    }

    #[test]
    fn times_and_time_ranges() {
        assert_eq!(n("0:00-4:00"), "零点到四点");
        assert_eq!(n("凌晨0点到4点"), "凌晨零点到四点");
        assert_eq!(n("14:30"), "十四点三十分");
        assert_eq!(n("9:05"), "九点零五分");
        assert_eq!(n("2:00"), "两点");
        assert_eq!(n("下午2点"), "下午两点");
        assert_eq!(n("22:00～6:00"), "二十二点到六点");
        assert_eq!(n("8:00:30"), "八点零分三十秒");
        assert_eq!(said_pinyin("1:00"), vec!["yi1"]);
    }

    #[test]
    fn cardinals_and_liang() {
        assert_eq!(n("共有2个问题"), "共有两个问题");
        assert_eq!(n("第2个"), "第二个");
        assert_eq!(n("2"), "二");
        assert_eq!(n("等待2分钟"), "等待两分钟");
        assert_eq!(n("2000元"), "两千元");
        assert_eq!(n("12345"), "一万二千三百四十五");
        assert_eq!(n("105人"), "一百零五人");
        assert_eq!(n("3号楼302室"), "三号楼三零二室");
        assert_eq!(n("1,280元"), "一千二百八十元");
        assert_eq!(n("1天"), "一天");
    }

    #[test]
    fn decimals_percent_fractions() {
        assert_eq!(n("3.14"), "三点一四");
        assert_eq!(n("0.5元"), "零点五元");
        assert_eq!(n("50%"), "百分之五十");
        assert_eq!(n("12.5%"), "百分之十二点五");
        assert_eq!(n("10%-20%"), "百分之十到百分之二十");
        assert_eq!(n("1/3"), "三分之一");
        assert_eq!(n("¥99"), "九十九元");
        assert_eq!(n("-5℃"), "负五摄氏度");
    }

    #[test]
    fn comparisons_and_ranges() {
        assert_eq!(n("<10分钟"), "小于十分钟");
        assert_eq!(n(">=3天"), "大于等于三天");
        assert_eq!(n("3-5天"), "三到五天");
        assert_eq!(n("周一~周五"), "周一到周五");
        assert_eq!(n("1+1=2"), "一加一等于二");
        assert_eq!(n("50元/月"), "五十元每月");
    }

    #[test]
    fn phone_numbers_digit_by_digit_with_yao() {
        assert_eq!(n("13812345678"), "幺三八幺二三四五六七八");
        assert_eq!(n("138-1234-5678"), "幺三八幺二三四五六七八");
        assert_eq!(n("010-62345678"), "零幺零六二三四五六七八");
        assert_eq!(n("400-810-1234"), "四零零八幺零幺二三四");
        // Grouped 3-4-4 so the voice pauses where people do.
        assert_eq!(normalize("13812345678").len(), 3);
        assert_eq!(n("尾号1234"), "尾号幺二三四");
        assert_eq!(n("订单号20250101"), "订单号二零二五零幺零幺");
        assert_eq!(n("验证码是 0371"), "验证码是 零三七幺");
    }

    #[test]
    fn email_is_spelled() {
        assert_eq!(n("zhang.wei@example.com"), "ZHANG点WEI艾特EXAMPLE点COM");
        assert_eq!(n("li_ming88@qq.com"), "LI下划线MING八八艾特QQ点COM");
    }

    #[test]
    fn latin_letters_and_units() {
        assert_eq!(n("VIP客户"), "VIP客户");
        assert_eq!(said_pinyin("VIP"), vec!["wei1 ai4 pi1"]);
        assert_eq!(n("5kg"), "五公斤");
        assert_eq!(n("100GB"), "一百G");
        assert_eq!(n("ok"), "OK");
    }

    proptest::proptest! {
        /// Any input normalises without panicking and leaves no digit unread.
        #[test]
        fn never_panics_and_reads_every_digit(input in "[0-9a-zA-Z@.:%<>=+\\-~/¥，。 天个号点月年日元0-9]{0,40}") {
            let out = normalize_to_string(&input);
            proptest::prop_assert!(!out.chars().any(|c| c.is_ascii_digit()), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn fullwidth_is_folded() {
        assert_eq!(n("１２３"), "一百二十三");
        assert_eq!(n("好的，谢谢！"), "好的，谢谢！");
    }
}
