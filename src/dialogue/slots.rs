//! Values picked out of what a caller says: phone numbers read in groups or as
//! Chinese digits, serial numbers spelled letter by letter, addresses, and
//! corrections ("不对，是602，不是502").
//!
//! Everything here is pure text processing; the engine decides which step a
//! value belongs to.

use chrono::{DateTime, FixedOffset};

use super::script::FieldKind;
use super::timeparse::parse_callback_time;

fn digit_of(c: char) -> Option<char> {
    Some(match c {
        '0'..='9' => c,
        '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32)?,
        '零' | '〇' | '○' | '洞' => '0',
        '一' | '幺' | '妖' => '1',
        '二' | '两' => '2',
        '三' => '3',
        '四' => '4',
        '五' => '5',
        '六' => '6',
        '七' | '拐' => '7',
        '八' => '8',
        '九' | '勾' => '9',
        _ => return None,
    })
}

fn is_spacer(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '－' | '—' | '、' | '，' | ',' | '.' | '·')
}

/// Digit runs of the text, with Chinese digits read one by one (一三八 → 138) when
/// they come three or more in a row, and spaces/dashes between groups ignored.
/// Runs of Chinese digits shorter than three (一下, 十二) are left alone.
pub fn digit_runs(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if digit_of(chars[i]).is_none() {
            i += 1;
            continue;
        }
        // Extend over digits and spacers between digits.
        let mut j = i;
        let mut run = String::new();
        let mut han = 0;
        let mut last_digit = i;
        while j < chars.len() {
            if let Some(d) = digit_of(chars[j]) {
                if !chars[j].is_ascii_digit() && !('０'..='９').contains(&chars[j]) {
                    han += 1;
                }
                run.push(d);
                last_digit = j;
                j += 1;
            } else if is_spacer(chars[j]) && chars.get(j + 1).and_then(|c| digit_of(*c)).is_some() {
                j += 1;
            } else {
                break;
            }
        }
        let ascii = run.len() - han;
        if ascii > 0 || han >= 3 {
            out.push(run);
        }
        i = last_digit + 1;
    }
    out
}

/// A mobile (11 digits, 1[3-9]…) or landline with area code (0 + 9–11 digits),
/// or a 4-digit tail after 尾号.
pub fn extract_phone(s: &str) -> Option<String> {
    let runs = digit_runs(s);
    if let Some(m) = runs
        .iter()
        .find(|r| r.len() == 11 && r.starts_with('1') && r.as_bytes()[1] >= b'3')
    {
        return Some(m.clone());
    }
    if let Some(l) = runs
        .iter()
        .find(|r| r.starts_with('0') && (10..=12).contains(&r.len()))
    {
        return Some(l.clone());
    }
    if s.contains("尾号") {
        return runs.iter().find(|r| r.len() == 4).cloned();
    }
    None
}

/// Letters and digits as heard ("QS 2023 B 1188" → QS2023B1188): the longest
/// alphanumeric run with at least one digit and four characters.
pub fn extract_serial(s: &str) -> Option<String> {
    let mut best = String::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let ascii_alnum = c.is_ascii_alphanumeric();
        let full = ('０'..='９').contains(&c) || ('Ａ'..='Ｚ').contains(&c);
        if ascii_alnum || full {
            let c = if full {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            } else {
                c
            };
            cur.push(c.to_ascii_uppercase());
        } else if (c == ' ' || c == '-')
            && !cur.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphanumeric())
        {
            // spelled in groups
        } else {
            if cur.len() > best.len() {
                best = std::mem::take(&mut cur);
            }
            cur.clear();
        }
    }
    if cur.len() > best.len() {
        best = cur;
    }
    (best.len() >= 4 && best.chars().any(|c| c.is_ascii_digit())).then_some(best)
}

const ADDRESS_MARKERS: &[&str] = &[
    "路", "街", "区", "市", "村", "镇", "小区", "栋", "单元", "室", "楼", "巷", "大道", "公寓",
    "花园", "苑", "幢", "胡同", "省", "县",
];

/// An address as said, without the lead-in ("地址是", "我家在") and the
/// sentence-final particles.
pub fn extract_address(s: &str) -> Option<String> {
    // "号" alone is not enough: 编号, 号码 and 几号 are not addresses.
    if !ADDRESS_MARKERS.iter().any(|m| s.contains(m)) || s.contains("编号") || s.contains("号码")
    {
        return None;
    }
    let mut t = s.trim();
    for lead in [
        "地址是",
        "地址在",
        "我家住在",
        "我家在",
        "我住在",
        "住在",
        "在",
        "是",
        "就是",
        "嗯",
        "呃",
        "，",
        ",",
    ] {
        t = t.trim_start_matches(lead).trim();
    }
    let t = t.trim_end_matches(['。', '吧', '啊', '呀', '哈', '，', ',', '！', '!', ' ']);
    (!t.is_empty()).then(|| t.to_string())
}

/// A value of `kind` in `s`, normalised for the record (times as RFC 3339).
pub fn extract(kind: FieldKind, s: &str, now: DateTime<FixedOffset>) -> Option<String> {
    match kind {
        FieldKind::Phone => extract_phone(s),
        FieldKind::Serial => extract_serial(s),
        FieldKind::Address => extract_address(s),
        FieldKind::Time => parse_callback_time(s, now)
            .filter(|t| t.at > now)
            .map(|t| t.at.to_rfc3339()),
        FieldKind::Text => {
            let t = s.trim();
            (t.chars().filter(|c| c.is_alphanumeric()).count() >= 4).then(|| t.to_string())
        }
    }
}

/// "不对，是602，不是502" / "刚才说错了，手机是…": the new value and, when said, the
/// old one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub new: String,
    pub old: Option<String>,
}

const CORRECTION_CUES: &[&str] = &[
    "不对",
    "说错",
    "错了",
    "更正",
    "纠正",
    "搞错",
    "改一下",
    "改成",
    "应该是",
    "记错",
];

/// True when the caller corrects something said before.
pub fn is_correction(s: &str) -> bool {
    CORRECTION_CUES.iter().any(|c| s.contains(c))
}

/// Parses a correction: "是X，不是Y" / "不是Y，是X" / "…改成X".
pub fn correction(s: &str) -> Option<Correction> {
    if !is_correction(s) {
        return None;
    }
    let token = |part: &str| -> Option<String> {
        let p = part.trim().trim_start_matches(['是', '：', ':']).trim();
        let runs = digit_runs(p);
        if let Some(r) = runs.into_iter().max_by_key(|r| r.len()) {
            return Some(r);
        }
        extract_serial(p)
    };
    let clauses: Vec<&str> = s
        .split(['，', ',', '。', '；', ';', '！', '!'])
        .filter(|c| !c.trim().is_empty())
        .collect();
    let mut new = None;
    let mut old = None;
    for c in &clauses {
        let c = c.trim();
        if let Some(rest) = c
            .strip_prefix("不是")
            .or_else(|| c.split_once("不是").map(|x| x.1))
        {
            if old.is_none() {
                old = token(rest);
            }
            continue;
        }
        if let Some(v) = token(c) {
            new.get_or_insert(v);
        }
    }
    new.map(|new| Correction { new, old })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_every_reading() {
        assert_eq!(
            extract_phone("你记一下我的手机号，13812345678").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            extract_phone("一三九 零五七一 六六二二").as_deref(),
            Some("13905716622")
        );
        assert_eq!(
            extract_phone("138-1234-5678").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            extract_phone("幺三八幺二三四五六七八").as_deref(),
            Some("13812345678")
        );
        assert_eq!(
            extract_phone("座机0571-88776655").as_deref(),
            Some("057188776655")
        );
        assert_eq!(extract_phone("我等一下再说"), None);
        assert_eq!(extract_phone("尾号是1112").as_deref(), Some("1112"));
    }

    #[test]
    fn serials_as_spelled() {
        assert_eq!(
            extract_serial("机器编号 QS 2023 B 1188").as_deref(),
            Some("QS2023B1188")
        );
        assert_eq!(
            extract_serial("编号是qs2024a0567").as_deref(),
            Some("QS2024A0567")
        );
        assert_eq!(extract_serial("没有编号"), None);
    }

    #[test]
    fn addresses_without_lead_in() {
        assert_eq!(
            extract_address("地址是杭州市西湖区文三路88号").as_deref(),
            Some("杭州市西湖区文三路88号")
        );
        assert_eq!(extract_address("我不知道"), None);
        assert_eq!(extract_address("编号是QS2024A0567"), None);
    }

    #[test]
    fn corrections_name_old_and_new() {
        assert_eq!(
            correction("不对，是602，不是502"),
            Some(Correction {
                new: "602".into(),
                old: Some("502".into())
            })
        );
        assert_eq!(
            correction("刚才说错了，手机是13988881112"),
            Some(Correction {
                new: "13988881112".into(),
                old: None
            })
        );
        assert_eq!(correction("好的没问题"), None);
    }
}
