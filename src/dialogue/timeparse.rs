//! Callback-time expressions in spoken Mandarin (明天下午三点, 下周一上午, 半小时后,
//! 今晚八点半, 周五 …) turned into an absolute timestamp relative to an injected
//! "now", so the engine stays deterministic and testable.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike};

use super::text::{normalize, parse_number};

/// A parsed callback time. `exact` is false for vague answers (待会儿, 改天)
/// where a default time was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackTime {
    pub at: DateTime<FixedOffset>,
    pub exact: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Dawn,
    Morning,
    Forenoon,
    Noon,
    Afternoon,
    Dusk,
    Evening,
}

impl Part {
    fn default_time(self) -> (u32, u32) {
        match self {
            Part::Dawn => (6, 0),
            Part::Morning => (9, 0),
            Part::Forenoon => (10, 0),
            Part::Noon => (12, 0),
            Part::Afternoon => (15, 0),
            Part::Dusk => (18, 0),
            Part::Evening => (20, 0),
        }
    }
    fn adjust(self, h: u32) -> u32 {
        match self {
            Part::Afternoon | Part::Dusk | Part::Evening if h < 12 => h + 12,
            Part::Noon if h <= 3 => h + 12,
            _ => h,
        }
    }
}

fn find_part(s: &str) -> Option<Part> {
    const PARTS: &[(&str, Part)] = &[
        ("凌晨", Part::Dawn),
        ("下午", Part::Afternoon),
        ("午后", Part::Afternoon),
        ("傍晚", Part::Dusk),
        ("下班", Part::Dusk),
        ("晚上", Part::Evening),
        ("今晚", Part::Evening),
        ("明晚", Part::Evening),
        ("夜里", Part::Evening),
        ("晚间", Part::Evening),
        ("中午", Part::Noon),
        ("午饭", Part::Noon),
        ("上午", Part::Forenoon),
        ("早上", Part::Morning),
        ("早晨", Part::Morning),
        ("早点", Part::Morning),
        ("明早", Part::Morning),
        ("一早", Part::Morning),
        ("清早", Part::Morning),
    ];
    PARTS.iter().find(|(k, _)| s.contains(k)).map(|(_, p)| *p)
}

fn weekday_index(c: char) -> Option<u32> {
    match c {
        '一' | '1' => Some(0),
        '二' | '2' => Some(1),
        '三' | '3' => Some(2),
        '四' | '4' => Some(3),
        '五' | '5' => Some(4),
        '六' | '6' => Some(5),
        '日' | '天' | '七' | '7' => Some(6),
        _ => None,
    }
}

/// Finds a day reference; returns the date and whether it is an explicit day.
fn find_date(s: &str, today: NaiveDate) -> Option<NaiveDate> {
    let chars: Vec<char> = s.chars().collect();
    let wd_today = today.weekday().num_days_from_monday();
    // Week-day expressions: 下周一, 下个星期三, 这周五, 周五, 礼拜天, 周末.
    for (i, _) in chars.iter().enumerate() {
        for prefix in ["周", "星期", "礼拜", "週"] {
            let p: Vec<char> = prefix.chars().collect();
            if chars[i..].starts_with(&p) {
                let after = i + p.len();
                let before: String = chars[..i].iter().collect();
                let next_week = before.ends_with('下') || before.ends_with("下个");
                let this_week = before.ends_with('这') || before.ends_with('本');
                let target = match chars.get(after) {
                    Some('末') => Some(5),
                    Some(c) => weekday_index(*c),
                    None => None,
                };
                match target {
                    Some(t) => {
                        let date = if next_week {
                            let to_monday = 7 - wd_today;
                            today + Duration::days(i64::from(to_monday + t))
                        } else {
                            let mut ahead = (t + 7 - wd_today) % 7;
                            if ahead == 0 && !this_week {
                                ahead = 7;
                            }
                            today + Duration::days(i64::from(ahead))
                        };
                        return Some(date);
                    }
                    None if next_week => {
                        return Some(today + Duration::days(i64::from(7 - wd_today)));
                    }
                    None => {}
                }
            }
        }
    }
    if s.contains("大后天") {
        return Some(today + Duration::days(3));
    }
    if s.contains("后天") {
        return Some(today + Duration::days(2));
    }
    if s.contains("明天") || s.contains("明儿") || s.contains("明早") || s.contains("明晚")
    {
        return Some(today + Duration::days(1));
    }
    if s.contains("过两天") || s.contains("过几天") {
        return Some(today + Duration::days(2));
    }
    if s.contains("今天") || s.contains("今儿") || s.contains("今晚") || s.contains("今早")
    {
        return Some(today);
    }
    // M月D日 / M月D号 / D号.
    for (i, c) in chars.iter().enumerate() {
        if *c == '月' && i > 0 {
            let start = (0..i)
                .rev()
                .take_while(|&j| {
                    chars[j].is_ascii_digit() || "一二三四五六七八九十".contains(chars[j])
                })
                .last();
            if let Some(st) = start {
                let month = parse_number(&chars[st..i]).map(|x| x.0);
                let day = parse_number(&chars[i + 1..]);
                if let (Some(m), Some((d, n))) = (month, day) {
                    if matches!(chars.get(i + 1 + n), Some('日' | '号')) {
                        let mut year = today.year();
                        if let Some(date) = NaiveDate::from_ymd_opt(year, m, d) {
                            if date < today {
                                year += 1;
                            }
                        }
                        return NaiveDate::from_ymd_opt(year, m, d);
                    }
                }
            }
        }
        if (*c == '号' || *c == '日') && i > 0 {
            let start = (0..i)
                .rev()
                .take_while(|&j| {
                    chars[j].is_ascii_digit() || "一二三四五六七八九十".contains(chars[j])
                })
                .last();
            if let Some(st) = start {
                if let Some((d, _)) = parse_number(&chars[st..i]) {
                    let mut date = NaiveDate::from_ymd_opt(today.year(), today.month(), d);
                    if date.is_some_and(|x| x < today) {
                        let (y, m) = if today.month() == 12 {
                            (today.year() + 1, 1)
                        } else {
                            (today.year(), today.month() + 1)
                        };
                        date = NaiveDate::from_ymd_opt(y, m, d);
                    }
                    if date.is_some() {
                        return date;
                    }
                }
            }
        }
    }
    None
}

/// Finds "N点[半|M分|一刻]" or "H:MM"; returns (hour, minute).
fn find_clock(s: &str) -> Option<(u32, u32)> {
    let chars: Vec<char> = s.chars().collect();
    for i in 0..chars.len() {
        if chars[i] == '点' || chars[i] == ':' {
            let start = (0..i)
                .rev()
                .take_while(|&j| {
                    chars[j].is_ascii_digit() || "一二两三四五六七八九十零".contains(chars[j])
                })
                .last()?;
            let (h, _) = parse_number(&chars[start..i])?;
            if h > 24 {
                continue;
            }
            let mut rest = i + 1;
            if chars.get(rest) == Some(&'钟') {
                rest += 1;
            }
            let tail: String = chars[rest..].iter().collect();
            let minute = if tail.starts_with('半') {
                30
            } else if tail.starts_with("一刻") {
                15
            } else if tail.starts_with("三刻") {
                45
            } else if let Some((m, n)) = parse_number(&chars[rest..]) {
                let unit_ok =
                    chars[i] == ':' || matches!(chars.get(rest + n), Some('分') | None) || n == 2;
                if m < 60 && unit_ok {
                    m
                } else {
                    0
                }
            } else {
                0
            };
            return Some((h, minute));
        }
    }
    None
}

/// Finds a relative delay: 半小时后, 两个小时以后, 二十分钟之后, 一刻钟后, 过十分钟.
fn find_delay(s: &str) -> Option<Duration> {
    let relative = ["后", "以后", "之后", "过后"].iter().any(|k| s.contains(k))
        || s.contains('过')
        || s.contains('等');
    if !relative {
        return None;
    }
    if s.contains("一刻钟") {
        return Some(Duration::minutes(15));
    }
    let chars: Vec<char> = s.chars().collect();
    for i in 0..chars.len() {
        let tail: String = chars[i..].iter().collect();
        if tail.starts_with("半小时") || tail.starts_with("半个小时") || tail.starts_with("半个钟")
        {
            return Some(Duration::minutes(30));
        }
        if let Some((n, len)) = parse_number(&chars[i..]) {
            let mut j = i + len;
            if chars.get(j) == Some(&'个') {
                j += 1;
            }
            let unit: String = chars[j..].iter().collect();
            let half = unit.starts_with("半小时") || unit.starts_with("半个小时");
            if unit.starts_with("小时") || unit.starts_with("钟头") || half {
                let extra = if half || unit.starts_with("小时半") {
                    30
                } else {
                    0
                };
                return Some(Duration::minutes(i64::from(n) * 60 + extra));
            }
            if unit.starts_with("分钟") || unit.starts_with('分') {
                return Some(Duration::minutes(i64::from(n)));
            }
        }
    }
    None
}

/// Vague answers and the default delay chosen for them.
fn find_vague(s: &str, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    const SOON: &[&str] = &[
        "待会",
        "等会",
        "一会儿",
        "一会",
        "晚点",
        "晚一点",
        "稍后",
        "过会",
        "回头",
    ];
    if SOON.iter().any(|k| s.contains(k)) {
        return Some(now + Duration::hours(1));
    }
    if s.contains("改天") || s.contains("下次") {
        let d = now.date_naive() + Duration::days(1);
        return at(now, d, 10, 0);
    }
    None
}

fn at(now: DateTime<FixedOffset>, d: NaiveDate, h: u32, m: u32) -> Option<DateTime<FixedOffset>> {
    let t = NaiveTime::from_hms_opt(h.min(23), m, 0)?;
    now.offset().from_local_datetime(&d.and_time(t)).single()
}

/// Parses a callback time from an utterance, relative to `now`.
pub fn parse_callback_time(utterance: &str, now: DateTime<FixedOffset>) -> Option<CallbackTime> {
    let today = now.date_naive();
    let s = normalize(&last_offer(utterance, today));
    let date = find_date(&s, today);
    let part = find_part(&s);
    let clock = find_clock(&s);
    if date.is_none() && clock.is_none() {
        if let Some(d) = find_delay(&s) {
            let t = now + d;
            let t = t
                .with_second(0)
                .and_then(|x| x.with_nanosecond(0))
                .unwrap_or(t);
            return Some(CallbackTime { at: t, exact: true });
        }
    }
    if date.is_none() && part.is_none() && clock.is_none() {
        return find_vague(&s, now).map(|at| CallbackTime { at, exact: false });
    }
    let (h, m) = match (clock, part) {
        (Some((h, m)), Some(p)) => (p.adjust(h), m),
        (Some((h, m)), None) => (h, m),
        (None, Some(p)) => p.default_time(),
        (None, None) => (10, 0),
    };
    let day = date.unwrap_or(today);
    let mut result = at(now, day, h, m)?;
    if date.is_none() && result <= now {
        if part.is_none() && h < 12 {
            if let Some(pm) = at(now, day, h + 12, m).filter(|t| *t > now) {
                return Some(CallbackTime {
                    at: pm,
                    exact: true,
                });
            }
        }
        result = at(now, day + Duration::days(1), h, m)?;
    } else if date.is_none() && part.is_none() && (1..=6).contains(&h) {
        // "三点" in a business call means the afternoon.
        result = at(now, day, h + 12, m)?;
    } else if date.is_some() && part.is_none() && (1..=6).contains(&h) {
        result = at(now, day, h + 12, m)?;
    }
    Some(CallbackTime {
        at: result,
        exact: true,
    })
}

/// Words that take a day back ("周四去还，哦不，周四加班，周五吧").
const TAKEN_BACK: &[&str] = &[
    "不行",
    "没空",
    "没时间",
    "加班",
    "有事",
    "不方便",
    "来不了",
    "去不了",
    "不在",
    "哦不",
    "不对",
    "算了",
    "走不开",
];

/// The part of `s` from the last clause that names a day, when a day named
/// before it is taken back; otherwise all of `s`.
fn last_offer(s: &str, today: NaiveDate) -> String {
    let mut starts = vec![0];
    starts.extend(
        s.match_indices(['，', ',', '。', '；', ';', ' '])
            .map(|(i, m)| i + m.len()),
    );
    let dated: Vec<usize> = starts
        .iter()
        .copied()
        .filter(|&i| {
            let end = s[i..]
                .find(['，', ',', '。', '；', ';', ' '])
                .map_or(s.len(), |e| i + e);
            find_date(&normalize(&s[i..end]), today).is_some()
        })
        .collect();
    match dated.as_slice() {
        [first, .., last] if TAKEN_BACK.iter().any(|w| s[*first..*last].contains(w)) => {
            s[*last..].to_string()
        }
        _ => s.to_string(),
    }
}

/// Speakable Chinese form of a callback time, e.g. "11月26日（周四）下午3点".
pub fn speak_time(t: DateTime<FixedOffset>, now: DateTime<FixedOffset>) -> String {
    const WD: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let days = (t.date_naive() - now.date_naive()).num_days();
    let day = match days {
        0 => "今天".to_string(),
        1 => "明天".to_string(),
        2 => "后天".to_string(),
        _ => format!(
            "{}月{}日周{}",
            t.month(),
            t.day(),
            WD[t.weekday().num_days_from_monday() as usize]
        ),
    };
    let (h, m) = (t.hour(), t.minute());
    let (part, h12) = match h {
        0..=5 => ("凌晨", h),
        6..=11 => ("上午", h),
        12 => ("中午", 12),
        13..=17 => ("下午", h - 12),
        _ => ("晚上", h - 12),
    };
    let min = match m {
        0 => String::new(),
        30 => "半".to_string(),
        _ => format!("{m}分"),
    };
    format!("{day}{part}{h12}点{min}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_day_taken_back_gives_way_to_the_next() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        let t = super::parse_callback_time("周四去，哦不，周四加班，周五吧", now).unwrap();
        assert_eq!(t.at.date_naive().to_string(), "2026-12-11");
        let t = super::parse_callback_time("明天不行，后天上午可以", now).unwrap();
        assert_eq!(t.at.date_naive().to_string(), "2026-12-09");
        // Two days offered, none taken back: the first stands.
        let t = super::parse_callback_time("周四周五都行", now).unwrap();
        assert_eq!(t.at.date_naive().to_string(), "2026-12-10");
    }

    use super::*;

    fn now() -> DateTime<FixedOffset> {
        // Wednesday 2026-11-25 10:20 Beijing time.
        DateTime::parse_from_rfc3339("2026-11-25T10:20:00+08:00").unwrap()
    }

    fn p(s: &str) -> String {
        parse_callback_time(s, now())
            .map(|c| c.at.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn common_expressions() {
        assert_eq!(p("明天下午三点"), "2026-11-26 15:00");
        assert_eq!(p("下周一上午"), "2026-11-30 10:00");
        assert_eq!(p("半小时后"), "2026-11-25 10:50");
        assert_eq!(p("今晚八点半"), "2026-11-25 20:30");
        assert_eq!(p("周五"), "2026-11-27 10:00");
    }

    #[test]
    fn speakable() {
        let t = parse_callback_time("明天下午三点", now()).unwrap().at;
        assert_eq!(speak_time(t, now()), "明天下午3点");
    }
}
