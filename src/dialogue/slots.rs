//! Values picked out of what a caller says: phone numbers read in groups or as
//! Chinese digits, serial numbers spelled letter by letter, addresses, and
//! corrections ("不对，是602，不是502").
//!
//! Everything here is pure text processing; the engine decides which step a
//! value belongs to.

use chrono::{DateTime, FixedOffset};

use super::script::FieldKind;
use super::timeparse::{parse_callback_time, CallbackTime};

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
    // "Q S 二零二三 B 一一八九": digits read out in Chinese, between spelled letters.
    let spoken = spoken_digits_to_ascii(s);
    let s = spoken.as_str();
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
    // Read out in Chinese digits ("二零一六三三八七"): the longest such run.
    if let Some(spoken) = digit_runs(s).into_iter().max_by_key(|r| r.len()) {
        if spoken.len() > best.len() {
            best = spoken;
        }
    }
    // "K，D，五七一零，三三六" / "A，H，二六，零三": letters and digits read a few at
    // a time, the groups parted by commas or pauses.
    if let Some(grouped) = grouped_serial(&chars) {
        if grouped.len() > best.len() {
            best = grouped;
        }
    }
    (best.len() >= 4 && best.chars().any(|c| c.is_ascii_digit())).then_some(best)
}

/// A serial read in short groups ("K D，五七一零，六六八，八二一", "A，H，二六，零三，九九"):
/// groups of at most five letters or digits (Chinese digits included) joined across
/// spaces, commas and dashes. A long group is a whole value and is not glued to the
/// next one ("KD5710668821，13968015537" are two values). At least one letter and
/// three digits, so words such as 一下 or 两个 never start a serial.
fn grouped_serial(chars: &[char]) -> Option<String> {
    let unit = |c: char| -> Option<char> {
        if c.is_ascii_alphabetic() {
            Some(c.to_ascii_uppercase())
        } else if ('Ａ'..='Ｚ').contains(&c) || ('ａ'..='ｚ').contains(&c) {
            char::from_u32(c as u32 - 0xFEE0).map(|c| c.to_ascii_uppercase())
        } else {
            digit_of(c)
        }
    };
    let mut best: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        if unit(chars[i]).is_none() {
            i += 1;
            continue;
        }
        let mut run = String::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() {
                match unit(chars[j]) {
                    Some(u) => run.push(u),
                    None => break,
                }
                j += 1;
            }
            let group_len = j - start;
            let mut k = j;
            while k < chars.len() && is_spacer(chars[k]) {
                k += 1;
            }
            let next_len = chars[k.min(chars.len())..]
                .iter()
                .take_while(|c| unit(**c).is_some())
                .count();
            // Letters spelled first take the number after them whole ("SW，TM，
            // 六一零二四七").
            let letters_so_far = run.chars().all(|c| c.is_ascii_alphabetic());
            if k > j
                && next_len > 0
                && group_len <= 5
                && (next_len <= 5 || letters_so_far && next_len <= 10)
                && k - j <= 2
            {
                j = k;
            } else {
                break;
            }
        }
        let letters = run.chars().filter(|c| c.is_ascii_alphabetic()).count();
        let digits = run.chars().filter(|c| c.is_ascii_digit()).count();
        if letters > 0 && digits >= 3 && best.as_ref().is_none_or(|b| run.len() > b.len()) {
            best = Some(run);
        }
        i = j.max(i + 1);
    }
    best
}

/// Runs of three or more Chinese digits read one by one ("二零二三") written as
/// Arabic digits; everything else as it was.
fn spoken_digits_to_ascii(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| !c.is_ascii_digit() && digit_of(**c).is_some())
            .count();
        if run >= 3 {
            out.extend(chars[i..i + run].iter().filter_map(|c| digit_of(*c)));
            i += run;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Building, unit and room numbers of an address in Arabic digits, as they are
/// written down ("十二号楼三单元四零二" → "12号楼3单元402"); numerals in names
/// (一品苑, 三里屯) stay.
pub fn address_digits(s: &str) -> String {
    const AFTER: &[char] = &['号', '楼', '栋', '幢', '单', '室', '层', '座', '弄', '户'];
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| cn_digit(**c).is_some() || cn_unit(**c).is_some())
            .count();
        if run == 0 {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let next = chars.get(i + run).copied();
        let numbered = next.is_some_and(|c| AFTER.contains(&c));
        let has_unit = chars[i..i + run].iter().any(|c| cn_unit(*c).is_some());
        let room = !has_unit
            && run >= 3
            && next.is_none_or(|c| !super::text::is_han(c) || "室号".contains(c));
        let prev_han =
            i > 0 && super::text::is_han(chars[i - 1]) && cn_digit(chars[i - 1]).is_none();
        // A numeral glued to a word before it ("一品") is a name, unless a unit
        // word precedes it ("楼三单元").
        let after_unit = i > 0 && "楼栋幢元号区路街巷弄".contains(chars[i - 1]);
        if numbered || room && (!prev_han || after_unit) {
            if has_unit {
                if let Some((v, n)) = quantity_at(&chars[i..]).filter(|(_, n)| *n == run) {
                    out.push_str(&v.to_string());
                    i += n;
                    continue;
                }
            } else {
                out.extend(
                    chars[i..i + run]
                        .iter()
                        .filter_map(|c| cn_digit(*c))
                        .map(|d| char::from_digit(d as u32, 10).unwrap_or('0')),
                );
                i += run;
                continue;
            }
        }
        out.extend(&chars[i..i + run]);
        i += run;
    }
    out
}

const ADDRESS_MARKERS: &[&str] = &[
    "路", "街", "区", "市", "村", "镇", "小区", "栋", "单元", "室", "楼", "巷", "大道", "公寓",
    "花园", "苑", "幢", "胡同", "省", "县",
];

/// A reply that is nothing but digits read out, in groups or not ("幺零，四七，
/// 二九", "车架号后六位是 6 2 0 4 8 1"): the digits as one number. At least three.
pub fn digits_read_out(s: &str) -> Option<String> {
    let mut t = s.trim();
    for lead in [
        "后六位是",
        "后四位是",
        "尾号是",
        "号码是",
        "是",
        "嗯",
        "就是",
    ] {
        if let Some(p) = t.rfind(lead) {
            t = &t[p + lead.len()..];
            break;
        }
    }
    let mut out = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else if let Some(d) = cn_digit(c).filter(|d| *d < 10) {
            out.push(char::from(b'0' + d as u8));
        } else if c == '幺' {
            out.push('1');
        } else if !"，,、。 .-—".contains(c) {
            return None;
        }
    }
    (out.len() >= 3).then_some(out)
}

/// Everyday words holding an address marker that name no place (卧室的灯, 路由器,
/// 楼下邻居, 超市).
const NOT_ADDRESS_WORDS: &[&str] = &[
    "路由",
    "卧室",
    "浴室",
    "办公室",
    "教室",
    "会议室",
    "科室",
    "诊室",
    "超市",
    "区别",
    "路上",
    "楼下",
    "楼上",
    "楼道",
    "楼梯",
    "一路",
];

/// Markers that count a building part: an address only with a number before them
/// (9幢, 二单元, 602室, 3楼).
const NUMBERED_MARKERS: &[&str] = &["栋", "幢", "单元", "室", "楼"];

/// Whether `s` names a place: a place word (路, 小区, 区…) after some name, or a
/// numbered building part, outside everyday words like 卧室 or 路由器.
fn has_address_marker(s: &str) -> bool {
    let mut t = s.to_string();
    for w in NOT_ADDRESS_WORDS {
        t = t.replace(w, "，");
    }
    let numeral = |c: char| c.is_ascii_digit() || "零〇一二两三四五六七八九十百幺".contains(c);
    ADDRESS_MARKERS.iter().any(|m| {
        t.match_indices(m).any(|(i, _)| {
            let before = t[..i].chars().next_back();
            if *m == "楼" {
                // "3号楼" is a building; "停在二楼" is a floor, which alone is no
                // address ("西溪花园5楼" has 花园 for that).
                before == Some('号')
            } else if NUMBERED_MARKERS.contains(m) {
                before.is_some_and(|c| numeral(c) || c.is_ascii_alphabetic())
            } else {
                before.is_some_and(super::text::is_han)
            }
        })
    })
}

/// An address as said, without the lead-in ("地址是", "我家在") and the
/// sentence-final particles.
pub fn extract_address(s: &str) -> Option<String> {
    // Written as one string: "西溪蓝海，九幢，二单元，一零零三" → "西溪蓝海9幢2单元1003".
    extract_address_as_said(s).map(|a| address_digits(&a).replace(['，', ','], ""))
}

fn extract_address_as_said(s: &str) -> Option<String> {
    // "编号QS…，地址是拱墅区…": a labelled address, whatever came before it.
    let labelled = ["地址是", "地址在"]
        .iter()
        .find_map(|l| s.find(l).map(|p| &s[p..]));
    let mut s = labelled.unwrap_or(s);
    // "号" alone is not enough: 编号, 号码 and 几号 are not addresses. A number
    // said before the address ("编号DY2020…，装在拱墅区…2幢") is left out: the
    // address starts at the first clause with a marker and no number label.
    let numbered = |c: &str| c.contains("编号") || c.contains("号码") || c.contains("证号");
    if numbered(s) {
        let mut start = 0;
        let mut found = None;
        for (i, c) in s.char_indices() {
            let end = matches!(c, '，' | ',' | '。' | '；' | ';' | ' ').then_some(i);
            let end = end.or((i + c.len_utf8() == s.len()).then_some(s.len()));
            if let Some(end) = end {
                let clause = &s[start..end];
                if !numbered(clause) && has_address_marker(clause) {
                    found = Some(start);
                    break;
                }
                start = i + c.len_utf8();
            }
        }
        match found {
            Some(f) if !numbered(&s[f..]) => s = &s[f..],
            _ => return None,
        }
    }
    if !has_address_marker(s) {
        return None;
    }
    let mut t = s.trim();
    // "上门地址是…": what follows the label.
    for label in ["地址是", "地址在", "地址：", "地址:"] {
        if let Some(p) = t.find(label) {
            t = &t[p + label.len()..];
            break;
        }
    }
    // Trailing clauses with no address in them ("…302室，对吗？"): not part of it.
    let is_mark = |c: char| matches!(c, '，' | ',' | '。' | '？' | '?' | '！' | '!' | '；' | ';');
    // Leading ones too ("不对，我们上个月搬家了，现在住…").
    let mut first: Option<usize> = None;
    let mut end = 0;
    let mut start = 0;
    for (i, c) in t.char_indices() {
        if is_mark(c) || i + c.len_utf8() == t.len() {
            let stop = if is_mark(c) { i } else { t.len() };
            let clause = &t[start..stop];
            // "…二单元，一零零三": a room number read out after the building.
            let room_read_out = first.is_some()
                && clause.chars().count() >= 3
                && clause
                    .chars()
                    .all(|c| c.is_ascii_digit() || cn_digit(c).is_some());
            if has_address_marker(clause)
                || clause.chars().any(|c| c.is_ascii_digit())
                || room_read_out
            {
                first.get_or_insert(start);
                end = stop;
            }
            start = i + c.len_utf8();
        }
    }
    if let Some(first) = first.filter(|&f| f < end) {
        t = &t[first..end];
    }
    for lead in [
        "地址是",
        "地址在",
        "我家住在",
        "我家在",
        "现在住在",
        "现在住",
        "我住",
        "我住在",
        "住在",
        "住",
        "安装在",
        "装在",
        "送到",
        "寄到",
        "我是",
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

/// Common single-character surnames (the bulk of the population's), for telling a
/// name ("王秀英") from another short answer ("不知道").
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝封";
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐", "夏侯", "尉迟", "长孙", "公孙",
    "宇文", "司徒", "端木", "独孤", "南宫", "西门",
];

/// A person's name in an answer to "叫什么名字": after 叫/名字是/姓名是 when said,
/// else the whole answer when it is a name by itself. Two to four characters,
/// starting with a known surname.
pub fn extract_name(s: &str) -> Option<String> {
    let mut t = s.trim();
    for cue in ["名字是", "姓名是", "名字叫", "叫做", "叫"] {
        if let Some(p) = t.rfind(cue) {
            t = &t[p + cue.len()..];
            break;
        }
    }
    let t = t.trim_start_matches(|c: char| "是就嗯呃啊，, ".contains(c));
    let run: String = t.chars().take_while(|c| super::text::is_han(*c)).collect();
    // 明 and 时 are surnames too, but "明天上午" and "时间" are no names.
    const NOT_NAME_STARTS: &[&str] = &[
        "今天", "明天", "后天", "昨天", "周", "星期", "上午", "下午", "中午", "晚上", "时间",
        "全部", "文件", "安排",
    ];
    if NOT_NAME_STARTS.iter().any(|w| run.starts_with(w)) {
        return None;
    }
    let n = run.chars().count();
    let surname_len = if COMPOUND_SURNAMES.iter().any(|c| run.starts_with(c)) {
        2
    } else if run.chars().next().is_some_and(|c| SURNAMES.contains(c)) {
        1
    } else {
        return None;
    };
    if n < surname_len + 1 {
        return None;
    }
    // A clause that goes on after the name ("我叫孙丽华想挂妇科"): given names have
    // one or two characters.
    let keep = if n <= surname_len + 2 {
        n
    } else {
        surname_len + 2
    };
    let name: String = run.chars().take(keep).collect();
    const NOT_NAMES: &[&str] = &[
        "不", "没", "我", "你", "他", "她", "的", "吗", "了", "什么", "一下",
    ];
    if NOT_NAMES.iter().any(|w| name.contains(w)) {
        return None;
    }
    Some(name)
}

/// A quantity said as Arabic digits or Chinese numerals with units (9800, 一万零二百,
/// 九千五 = 9500, 一万二 = 12000, 1.2万), as a plain number. Digit strings read one by
/// one (一三八…) and numbers too long to be a quantity are not quantities.
pub fn extract_quantity(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // "屏幕上显示E05": digits glued to letters are a code, not a count.
        let in_code = i > 0 && chars[i - 1].is_ascii_alphabetic();
        // "一口气练六个", "一共三位": 一 in a set phrase counts nothing.
        let set_phrase = chars[i] == '一'
            && chars
                .get(i + 1)
                .is_some_and(|n| "口下起直共点会般样些定边旦向块道并齐".contains(*n));
        if !in_code && !set_phrase {
            if let Some((v, n)) = quantity_at(&chars[i..]) {
                // "解放路12号…4栋301室": the numbers of an address count nothing.
                let after: String = chars[i + n..].iter().take(2).collect();
                let in_address = ["号", "栋", "幢", "单元", "室", "弄"]
                    .iter()
                    .any(|u| after.starts_with(u))
                    || (i > 0 && "号栋幢元".contains(chars[i - 1]));
                if !in_address {
                    return Some(v.to_string());
                }
            }
        }
        // Skip the rest of a digit run that is no quantity (a phone number), so its
        // tail is not read as one.
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || cn_digit(**c).is_some())
            .count();
        i += run.max(1);
    }
    None
}

fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn cn_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        '万' => 10_000,
        _ => return None,
    })
}

/// The text with its place-value numbers in Arabic digits ("一百三十二，八十" →
/// "132，80"), as a person taking down a reading writes them. Digits read one by one
/// (一三八) and words with a digit in them (一天, 两口子) stay as they are.
pub fn numerals_to_digits(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| cn_digit(**c).is_some() || cn_unit(**c).is_some())
            .count();
        if run >= 2 && chars[i..i + run].iter().any(|c| cn_unit(*c).is_some()) {
            if let Some((v, n)) = quantity_at(&chars[i..]).filter(|(_, n)| *n > 0) {
                if chars[i..i + n].iter().any(|c| cn_unit(*c).is_some()) {
                    out.push_str(&v.to_string());
                    i += n;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The amounts said with `unit` ("十度", "14度", "八十多岁"): each number that ends
/// right before the unit, in Arabic or Chinese numerals.
pub fn amounts_with_unit(s: &str, unit: char) -> Vec<u64> {
    let chars: Vec<char> = s.chars().collect();
    let is_num = |c: char| c.is_ascii_digit() || cn_digit(c).is_some() || cn_unit(c).is_some();
    let mut out = Vec::new();
    for (k, &c) in chars.iter().enumerate() {
        if c != unit {
            continue;
        }
        // "八十多岁": an approximate amount counts as said.
        let end = if k > 0 && matches!(chars[k - 1], '多' | '几') {
            k - 1
        } else {
            k
        };
        let start = (0..end).rev().take_while(|&j| is_num(chars[j])).last();
        let Some(start) = start else { continue };
        if let Some((v, n)) = quantity_at(&chars[start..end]) {
            if n == end - start {
                out.push(v);
            }
        }
    }
    out
}

/// The quantity starting at `c[0]`, with the characters it spans.
fn quantity_at(c: &[char]) -> Option<(u64, usize)> {
    if c[0].is_ascii_digit() {
        let mut n = c.iter().take_while(|x| x.is_ascii_digit()).count();
        if n > 9 {
            return None;
        }
        let mut text: String = c[..n].iter().collect();
        if c.get(n) == Some(&'.') && c.get(n + 1).is_some_and(|x| x.is_ascii_digit()) {
            let frac = c[n + 1..].iter().take_while(|x| x.is_ascii_digit()).count();
            text.push('.');
            text.extend(&c[n + 1..n + 1 + frac]);
            n += 1 + frac;
        }
        let mut value: f64 = text.parse().ok()?;
        if let Some(u) = c.get(n).and_then(|x| cn_unit(*x)).filter(|u| *u >= 1000) {
            value *= u as f64;
            n += 1;
        }
        return Some((value.round() as u64, n));
    }
    if cn_digit(c[0]).is_none() && c[0] != '十' {
        return None;
    }
    // A run of bare digits (一三八, 九八零零): positional, unless it is too long to be
    // a quantity (a phone number read out).
    let run = c.iter().take_while(|x| cn_digit(**x).is_some()).count();
    if run >= 2 {
        if run > 6 {
            return None;
        }
        let v = c[..run]
            .iter()
            .fold(0u64, |a, x| a * 10 + cn_digit(*x).unwrap_or(0));
        return Some((v, run));
    }
    let (mut total, mut section) = (0u64, 0u64);
    let mut digit: Option<u64> = None;
    let mut last_unit = 0u64;
    let mut zero_before = false;
    let mut i = 0;
    while i < c.len() {
        if let Some(d) = cn_digit(c[i]) {
            if digit.is_some() {
                break;
            }
            if d == 0 {
                // 一万零二百: 零 only marks a skipped unit.
                zero_before = true;
                i += 1;
                continue;
            }
            digit = Some(d);
        } else if let Some(u) = cn_unit(c[i]) {
            if u == 10_000 {
                total += (section + digit.unwrap_or(0)) * u;
                section = 0;
            } else {
                section += digit.unwrap_or(1) * u;
            }
            digit = None;
            zero_before = false;
            last_unit = u;
        } else {
            break;
        }
        i += 1;
    }
    if last_unit == 0 {
        // One bare digit counts only before a measure word (三个人, 两台): 一下 and
        // 一点 are not quantities.
        let counted = c
            .get(i)
            .is_some_and(|m| "个位台口人辆次件张套间层只条头盒瓶包袋块部把户岁".contains(*m))
            || c[i.min(c.len())..].starts_with(&['公', '里']);
        return digit.filter(|_| counted).map(|d| (d, i));
    }
    let tail = match digit {
        // 九千五 = 9500, 一万二 = 12000: a bare digit after a unit counts in the next
        // unit down, unless a 零 came before it (一万零二 = 10002).
        Some(d) if !zero_before && last_unit >= 100 => d * (last_unit / 10),
        Some(d) => d,
        None => 0,
    };
    Some((total + section + tail, i))
}

/// A value of `kind` in `s`, normalised for the record (times as RFC 3339). A
/// sentence that corrects itself ("13812345678，不对，是…") gives the value after
/// the last correction.
pub fn extract(kind: FieldKind, s: &str, now: DateTime<FixedOffset>) -> Option<String> {
    if let Some((before, after)) = split_at_last_correction(s) {
        if kind == FieldKind::Time && date_words(after).is_none() {
            // "明天上午十点，哦不对，下午四点吧": the day from before, the clock from after.
            if let Some(d) = date_words(before) {
                if let Some(v) = extract_plain(kind, &format!("{d}{after}"), now) {
                    return Some(v);
                }
            }
        }
        // "KT20163381，哦不对，最后两位是八七": the end of the serial said again.
        if kind == FieldKind::Serial {
            let tail = ["最后", "末尾", "尾号", "后两位", "后三位", "后四位"]
                .iter()
                .find_map(|w| after.find(w).map(|i| &after[i + w.len()..]))
                .map(|t| match t.find('是') {
                    Some(i) => &t[i + '是'.len_utf8()..],
                    None => t.find('位').map_or(t, |i| &t[i + '位'.len_utf8()..]),
                })
                .map(|t| {
                    t.chars()
                        .skip_while(|c| digit_of(*c).is_none())
                        .take_while(|c| digit_of(*c).is_some() || is_spacer(*c))
                        .filter_map(digit_of)
                        .collect::<String>()
                })
                .filter(|d| (1..=6).contains(&d.len()));
            if let (Some(tail), Some(full)) = (tail, extract_plain(kind, before, now)) {
                if full.len() > tail.len() {
                    return Some(format!("{}{tail}", &full[..full.len() - tail.len()]));
                }
            }
        }
        if let Some(v) = extract_plain(kind, after, now) {
            // "一三八 一二三四 五六七八，不对，最后是五六七九": a corrected last group.
            if kind == FieldKind::Phone && v.len() < 11 {
                if let Some(full) = extract_plain(kind, before, now).filter(|f| f.len() >= 11) {
                    return Some(format!("{}{v}", &full[..full.len() - v.len()]));
                }
            }
            return Some(v);
        }
        if kind == FieldKind::Phone {
            let tail = digit_runs(after)
                .into_iter()
                .find(|r| (3..=8).contains(&r.len()));
            if let (Some(tail), Some(full)) =
                (tail, extract_phone(before).filter(|f| f.len() >= 11))
            {
                return Some(format!("{}{tail}", &full[..full.len() - tail.len()]));
            }
        }
        if kind == FieldKind::Time {
            // "周五上午十点，哦不对，十一点": the day from before, the clock from after.
            if let Some(d) = date_words(before) {
                if let Some(v) = extract_plain(kind, &format!("{d}{after}"), now) {
                    return Some(v);
                }
            }
        }
    }
    extract_plain(kind, s, now)
}

fn extract_plain(kind: FieldKind, s: &str, now: DateTime<FixedOffset>) -> Option<String> {
    match kind {
        FieldKind::Phone => extract_phone(s),
        FieldKind::Serial => extract_serial(s),
        FieldKind::Address => extract_address(s),
        FieldKind::Time => extract_time(s, now).map(|t| t.to_rfc3339()),
        FieldKind::Name => extract_name(s),
        FieldKind::Number => extract_quantity(s),
        FieldKind::Text => {
            let t = s.trim();
            (t.chars().filter(|c| c.is_alphanumeric()).count() >= 4).then(|| t.to_string())
        }
    }
}

/// Words that turn a proposed time down ("周六不行", "那天没空", "改成周日").
const TIME_REFUSALS: &[&str] = &[
    "不行",
    "没空",
    "有事",
    "不在家",
    "来不了",
    "赶不上",
    "不方便",
    "去不了",
    "过不去",
    "改成",
    "换成",
    "改到",
    "换到",
    "改为",
];

/// A time in `s` as the caller now wants it: what follows the last word turning a
/// time down ("周末没空，下周一下午四点吧" → 下周一下午四点; "周末我要上课，没空" →
/// none), or the time itself when nothing is turned down.
pub fn wanted_time(s: &str, now: DateTime<FixedOffset>) -> Option<String> {
    let cut = TIME_REFUSALS
        .iter()
        .flat_map(|w| s.match_indices(w).map(move |(i, _)| (i, w.len())))
        // "…行不行" asks; it turns nothing down.
        .filter(|&(i, _)| !(s[i..].starts_with("不行") && s[..i].ends_with('行')))
        .map(|(i, n)| i + n)
        .max();
    let Some(i) = cut else {
        return extract(FieldKind::Time, s, now);
    };
    let (before, after) = (&s[..i], &s[i..]);
    if date_words(after).is_none() {
        // "后天上午有事，下午三点": the day from before, the clock from after.
        if let Some(d) = date_words(before) {
            if let Some(v) = extract(FieldKind::Time, &format!("{d}{after}"), now) {
                return Some(v);
            }
        }
    }
    extract(FieldKind::Time, after, now)
}

/// Splits "A，不对，B" at its last correction cue.
pub fn split_at_last_correction(s: &str) -> Option<(&str, &str)> {
    CORRECTION_CUES
        .iter()
        .filter_map(|c| s.rfind(c).map(|i| (i, c.len())))
        .max_by_key(|(i, _)| *i)
        .map(|(i, n)| (&s[..i], &s[i + n..]))
        .filter(|(_, after)| after.chars().any(|c| c.is_alphanumeric()))
}

/// Cues that certainly take back what was said before them (not 改一下 / 应该是,
/// which also start ordinary requests: 密码改一下怎么弄).
const STRONG_CUES: &[&str] = &[
    "不对", "说错", "错了", "搞错", "记错", "口误", "更正", "纠正", "报错", "念错", "讲错",
];

/// Words that change a time already agreed ("改成后天下午三点").
const TIME_CHANGE_CUES: &[&str] = &[
    "改成", "改到", "改为", "换成", "换到", "挪到", "推到", "调到",
];

/// True when the caller changes something agreed to another value.
pub fn changes_time(s: &str) -> bool {
    TIME_CHANGE_CUES.iter().any(|c| s.contains(c))
}

/// What follows the last time-change word ("改成后天下午三点吧" → "后天下午三点吧").
pub fn after_time_change(s: &str) -> Option<&str> {
    TIME_CHANGE_CUES
        .iter()
        .filter_map(|c| s.rfind(c).map(|i| i + c.len()))
        .max()
        .map(|i| &s[i..])
}

/// Splits "A，不对，B" at its last strong correction cue.
pub fn split_at_last_strong_correction(s: &str) -> Option<(&str, &str)> {
    STRONG_CUES
        .iter()
        .filter_map(|c| s.rfind(c).map(|i| (i, c.len())))
        .max_by_key(|(i, _)| *i)
        .map(|(i, n)| (&s[..i], &s[i + n..]))
        .filter(|(_, after)| after.chars().any(|c| c.is_alphanumeric()))
}

const DATE_WORDS: &[&str] = &[
    "大后天",
    "今天",
    "明天",
    "后天",
    "下周一",
    "下周二",
    "下周三",
    "下周四",
    "下周五",
    "下周六",
    "下周日",
    "下周天",
    "周一",
    "周二",
    "周三",
    "周四",
    "周五",
    "周六",
    "周日",
    "周天",
    "星期一",
    "星期二",
    "星期三",
    "星期四",
    "星期五",
    "星期六",
    "星期日",
    "星期天",
    "礼拜一",
    "礼拜二",
    "礼拜三",
    "礼拜四",
    "礼拜五",
    "礼拜六",
    "礼拜天",
];

/// The last day word of `s` (明天, 周五, 星期三…).
pub(crate) fn date_words(s: &str) -> Option<&'static str> {
    DATE_WORDS
        .iter()
        .filter_map(|w| s.rfind(w).map(|i| (i + w.len(), *w)))
        .max_by_key(|(end, w)| (*end, w.len()))
        .map(|(_, w)| w)
}

/// The callback time a caller asks for, read like [`extract_time`] (the last
/// clause with a clock, the value after a self-correction).
pub fn callback_time(s: &str, now: DateTime<FixedOffset>) -> Option<CallbackTime> {
    let text = match split_at_last_correction(s) {
        Some((before, after)) => format!("{}{after}", date_words(before).unwrap_or("")),
        None => s.to_string(),
    };
    let at = extract_time(&text, now)?;
    let whole = parse_callback_time(&text, now);
    Some(CallbackTime {
        at,
        exact: whole.map(|w| w.exact).unwrap_or(true),
    })
}

/// A time in the future. When several clauses name times ("后天上午有事，下午三点"),
/// the last clause with a clock wins, with the day said before it.
pub fn extract_time(s: &str, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    let clauses: Vec<&str> = s
        .split(['，', ',', '。', '；', ';', '！', '!', '？', '?'])
        .filter(|c| !c.trim().is_empty())
        .collect();
    if clauses.len() > 1 {
        for (i, c) in clauses.iter().enumerate().rev() {
            let has_clock = c.contains('点') || c.contains(':') || c.contains('：');
            if !has_clock {
                continue;
            }
            let text = if date_words(c).is_some() {
                c.to_string()
            } else {
                let before = clauses[..i].join("，");
                format!("{}{c}", date_words(&before).unwrap_or(""))
            };
            if let Some(t) = parse_callback_time(&text, now).filter(|t| t.at > now) {
                return Some(t.at);
            }
        }
    }
    parse_callback_time(s, now)
        .filter(|t| t.at > now)
        .map(|t| t.at)
}

/// "不对，是602，不是502" / "刚才说错了，手机是…": the new value and, when said, the
/// old one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub new: String,
    pub old: Option<String>,
    /// "最后四位是8889" / "尾号是1112": `new` replaces the end of a phone number.
    pub tail: bool,
}

const CORRECTION_CUES: &[&str] = &[
    "不对",
    // "一三七…二二八六，哦不是，最后是二二六八": a 不是 taken back at once.
    "哦不是",
    "噢不是",
    "啊不是",
    "呃不是",
    "不是不是",
    "说错",
    "错了",
    "更正",
    "纠正",
    "搞错",
    "改一下",
    "应该是",
    "记错",
    "口误",
    "报错",
    "念错",
    "讲错",
];

/// Words that say the digits after them are the end of a number.
const TAIL_CUES: &[&str] = &[
    "最后一位",
    "最后1位",
    "末位",
    "尾号",
    "尾数",
    "最后四位",
    "最后4位",
    "最后三位",
    "最后3位",
    "最后两位",
    "最后2位",
    "后四位",
    "后4位",
    "后三位",
    "后3位",
    "末四位",
    "末4位",
    "最后一位",
    "最后几位",
];

/// Units that make a number part of an address (3幢, 502室) or a count.
const UNITS: &[char] = &[
    '号', '幢', '栋', '楼', '层', '室', '单', '弄', '路', '街', '巷', '座', '区',
];

/// True when the caller corrects something said before: a cue (不对, 说错了…) or a
/// value said to be wrong ("是4幢，不是3幢").
pub fn is_correction(s: &str) -> bool {
    CORRECTION_CUES.iter().any(|c| s.contains(c)) || denies_a_number(s)
}

/// "不是3幢" / "不是502": "不是" right before digits.
fn denies_a_number(s: &str) -> bool {
    s.match_indices("不是").any(|(i, m)| {
        let after: String = s[i + m.len()..].chars().take(4).collect();
        after
            .trim_start_matches('是')
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || ('０'..='９').contains(&c))
    })
}

/// The value a correction clause names: a run of digits with the unit that follows
/// it (4幢, 602室), else a serial.
fn correction_token(part: &str) -> Option<String> {
    let p = part
        .trim()
        .trim_start_matches(['是', '：', ':', '应', '该'])
        .trim();
    let runs = digit_runs(p);
    if let Some(serial) = extract_serial(p).filter(|v| v.chars().any(|c| c.is_ascii_alphabetic())) {
        return Some(serial);
    }
    if let Some(r) = runs.iter().max_by_key(|r| r.len()) {
        // Keep the unit written right after the digits ("4幢"), when the digits
        // are written as they are (not read out in Chinese numerals).
        if let Some(pos) = p.find(r.as_str()) {
            let after = p[pos + r.len()..].chars().next();
            if let Some(u) = after.filter(|c| UNITS.contains(c)) {
                return Some(format!("{r}{u}"));
            }
        }
        return Some(r.clone());
    }
    None
}

/// "（最后两位）是二一": one or two digits read in Chinese numerals right after a
/// tail cue, which [`digit_runs`] leaves alone elsewhere (一下, 十二).
fn short_tail(after_cue: &str) -> Option<String> {
    let rest = after_cue.trim_start_matches(['是', '：', ':', '应', '该', ' ']);
    let run: String = rest.chars().map_while(digit_of).collect();
    let next = rest.chars().nth(run.chars().count());
    // "一下" / "一点" are no digits; a unit after the run makes it a count.
    let word = next.is_some_and(|c| "下点些个位次天号".contains(c));
    ((1..=2).contains(&run.len()) && !word).then_some(run)
}

/// Parses a correction: "是X，不是Y" / "不是Y，是X" / "X，不是Y" / "…改成X" / "尾号是X".
pub fn correction(s: &str) -> Option<Correction> {
    if !is_correction(s) {
        return None;
    }
    if let Some(i) = TAIL_CUES
        .iter()
        .filter_map(|c| s.find(c).map(|i| i + c.len()))
        .max()
    {
        if let Some(tail) = digit_runs(&s[i..])
            .into_iter()
            .find(|r| (1..=8).contains(&r.len()))
            .or_else(|| short_tail(&s[i..]))
        {
            return Some(Correction {
                new: tail,
                old: None,
                tail: true,
            });
        }
    }
    let clauses: Vec<&str> = s
        .split(['，', ',', '。', '；', ';', '！', '!', '…'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // "不是Y" names the old value; the new one is in the same clause before it
    // ("是4幢不是3幢") or in the clause next to it, preferring one with the same unit.
    let mut old: Option<(usize, String)> = None;
    for (i, c) in clauses.iter().enumerate() {
        if let Some(pos) = c.find("不是") {
            if let Some(t) = correction_token(&c[pos + "不是".len()..]) {
                if let Some(n) = correction_token(&c[..pos]) {
                    return Some(Correction {
                        new: n,
                        old: Some(t),
                        tail: false,
                    });
                }
                old = Some((i, t));
                break;
            }
        }
    }
    let unit = |t: &str| t.chars().last().filter(|c| UNITS.contains(c));
    let candidates: Vec<(usize, String)> = clauses
        .iter()
        .enumerate()
        .filter(|(i, c)| old.as_ref().is_none_or(|(j, _)| j != i) && !c.contains("不是"))
        .filter_map(|(i, c)| correction_token(c).map(|t| (i, t)))
        .collect();
    let new = match &old {
        Some((j, o)) => candidates
            .iter()
            // "701，不是701，是710": the old value said first is not the new one.
            .filter(|(_, t)| t != o)
            .min_by_key(|(i, t)| {
                let same_unit = unit(t) == unit(o);
                (!same_unit, i.abs_diff(*j))
            })
            .map(|(_, t)| t.clone()),
        // Without an old value, the value said after the last cue wins.
        None => split_at_last_correction(s)
            .and_then(|(_, after)| {
                after
                    .split(['，', ',', '。', '；', ';', '！', '!'])
                    .find_map(correction_token)
            })
            .or_else(|| candidates.last().map(|(_, t)| t.clone())),
    };
    new.map(|new| Correction {
        new,
        old: old.map(|(_, o)| o),
        tail: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_number_taken_back_in_the_same_breath() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        assert_eq!(
            extract(
                FieldKind::Phone,
                "一三七 五七一零 二二八六，哦不是，最后是二二六八",
                now
            ),
            Some("13757102268".into())
        );
        assert_eq!(
            extract(FieldKind::Serial, "KT20163381，哦不对，最后两位是八七", now),
            Some("KT20163387".into())
        );
    }

    #[test]
    fn a_code_on_a_screen_is_no_count() {
        assert_eq!(extract_quantity("屏幕上显示E05"), None);
        assert_eq!(extract_quantity("三层的"), Some("3".into()));
        assert_eq!(extract_quantity("显示E05，一共三层"), Some("3".into()));
        assert_eq!(extract_quantity("我想一口气练六个小时"), Some("6".into()));
        assert_eq!(extract_quantity("一个"), Some("1".into()));
    }

    #[test]
    fn place_value_numbers_become_digits() {
        assert_eq!(
            numerals_to_digits("前天早上量的，一百三十二，八十"),
            "前天早上量的，132，80"
        );
        assert_eq!(
            numerals_to_digits("高压一百三，低压八十五"),
            "高压130，低压85"
        );
        assert_eq!(numerals_to_digits("才十一度"), "才11度");
        assert_eq!(numerals_to_digits("一天一片，两口子"), "一天一片，两口子");
        assert_eq!(numerals_to_digits("一三八零"), "一三八零");
    }

    #[test]
    fn the_numbers_of_an_address_are_no_quantity() {
        assert_eq!(extract_quantity("西城区解放路12号和平小区4栋301"), None);
        assert_eq!(extract_quantity("3栋2单元502室"), None);
        assert_eq!(extract_quantity("大概87平"), Some("87".into()));
        assert_eq!(extract_quantity("18楼，有电梯"), Some("18".into()));
    }

    #[test]
    fn quantities_in_digits_and_numerals() {
        let q = |s: &str| extract_quantity(s);
        assert_eq!(q("差不多九千八百公里").as_deref(), Some("9800"));
        assert_eq!(q("10200公里").as_deref(), Some("10200"));
        assert_eq!(q("一万零二百").as_deref(), Some("10200"));
        assert_eq!(q("九千五").as_deref(), Some("9500"));
        assert_eq!(q("一万二左右").as_deref(), Some("12000"));
        assert_eq!(q("开了一万一千公里").as_deref(), Some("11000"));
        assert_eq!(q("快一万了").as_deref(), Some("10000"));
        assert_eq!(q("1.2万").as_deref(), Some("12000"));
        assert_eq!(q("两万三千四百五十").as_deref(), Some("23450"));
        assert_eq!(q("一万零二").as_deref(), Some("10002"));
        assert_eq!(q("家里三个人").as_deref(), Some("3"));
        // A phone number read out is no quantity; no number at all gives none.
        assert_eq!(q("一三八一二三四五六七八"), None);
        assert_eq!(q("不太清楚"), None);
    }

    #[test]
    fn times_turned_down_and_proposed() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        let t = |s: &str| wanted_time(s, now);
        assert_eq!(t("周末我要带孩子上课，没空"), None);
        assert!(t("周末没空，下周一下午四点吧").is_some_and(|v| v.starts_with("2026-12-14T16:00")));
        assert!(t("周六我有事，改成周日上午吧").is_some_and(|v| v.starts_with("2026-12-13")));
        assert!(t("周六下午三点").is_some_and(|v| v.starts_with("2026-12-12T15:00")));
        assert!(t("周六上午我不在家，改到周日上午十点行不行")
            .is_some_and(|v| v.starts_with("2026-12-13T10:00")));
        assert!(t("改到后天上午十点吧，哦不对，后天上午有事，下午三点")
            .is_some_and(|v| v.starts_with("2026-12-09T15:00")));
    }

    #[test]
    fn names_alone_or_introduced() {
        let n = |s: &str| extract_name(s);
        assert_eq!(n("王秀英").as_deref(), Some("王秀英"));
        assert_eq!(n("我妈叫张桂兰").as_deref(), Some("张桂兰"));
        assert_eq!(n("我叫孙丽华，想挂妇科").as_deref(), Some("孙丽华"));
        assert_eq!(n("是刘方，方向的方").as_deref(), Some("刘方"));
        assert_eq!(n("欧阳娜娜").as_deref(), Some("欧阳娜娜"));
        assert_eq!(n("赵明。").as_deref(), Some("赵明"));
        assert_eq!(n("不知道"), None);
        assert_eq!(n("明天上午"), None);
        assert_eq!(n("你说什么"), None);
        assert_eq!(n("13812345678"), None);
    }

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
        assert_eq!(
            extract_address("上门地址是拱墅区莫干山路66号2幢302室，对吗？").as_deref(),
            Some("拱墅区莫干山路66号2幢302室")
        );
        assert_eq!(
            extract_address("不对，我们搬家了，现在住西湖区天目山路200号5幢1101，麻烦改一下")
                .as_deref(),
            Some("西湖区天目山路200号5幢1101")
        );
        assert_eq!(extract_address("我不知道"), None);
        assert_eq!(
            extract_serial("序列号我让租客拍给我了，SW，TM，六一零二四七").as_deref(),
            Some("SWTM610247")
        );
        // A number said before the address is not part of it.
        assert_eq!(
            extract_address("编号DY20200608，装在拱墅区祥符街道杭宸府2幢").as_deref(),
            Some("拱墅区祥符街道杭宸府2幢")
        );
        assert_eq!(extract_address("编号是DY20200608"), None);
        assert_eq!(
            extract_address("电话号码是13812345678，住3号楼"),
            Some("3号楼".into())
        );
        assert_eq!(
            digits_read_out("幺零，四七，二九").as_deref(),
            Some("104729")
        );
        assert_eq!(digits_read_out("是6 2 0 4 8 1").as_deref(), Some("620481"));
        assert_eq!(digits_read_out("十二点"), None);
        assert_eq!(digits_read_out("一二"), None);
        // Everyday words with an address marker name no place.
        assert_eq!(extract_address("卧室的灯不亮了"), None);
        assert_eq!(extract_address("路由器一直闪红灯"), None);
        assert_eq!(extract_address("楼下邻居说漏水"), None);
        // Read out clause by clause, the room number last: one written address.
        assert_eq!(
            extract_address("送到滨江区，江南大道，星光小区，七幢，三单元，八零二").as_deref(),
            Some("滨江区江南大道星光小区7幢3单元802")
        );
        assert_eq!(extract_address("编号是QS2024A0567"), None);
    }

    #[test]
    fn self_corrections_in_one_sentence() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        assert_eq!(
            extract(
                FieldKind::Phone,
                "打我的13812345678，不对，是13812345687",
                now
            )
            .as_deref(),
            Some("13812345687")
        );
        assert_eq!(
            extract(
                FieldKind::Phone,
                "一三八 一二三四 五六七八，不对不对，最后是五六七九",
                now
            )
            .as_deref(),
            Some("13812345679")
        );
        let t = |s: &str| extract(FieldKind::Time, s, now).unwrap_or_default();
        assert!(
            t("改到后天上午十点吧，哦不对，后天上午有事，下午三点").starts_with("2026-12-09T15:00")
        );
        assert!(t("改到周五上午十点吧，哦不对，周五上午要送孩子，改十一点")
            .starts_with("2026-12-11T11:00"));
        assert!(
            t("周六不行，改到周日上午十点吧，不对，周日下午两点").starts_with("2026-12-13T14:00")
        );
        assert!(t("明天上午十点，哦不对，上午我要上班，下午四点吧").starts_with("2026-12-08T16:00"));
    }

    #[test]
    fn corrections_name_old_and_new() {
        assert_eq!(
            correction("不对，是602，不是502"),
            Some(Correction {
                new: "602".into(),
                old: Some("502".into()),
                tail: false,
            })
        );
        assert_eq!(
            correction("刚才说错了，手机是13988881112"),
            Some(Correction {
                new: "13988881112".into(),
                old: None,
                tail: false,
            })
        );
        assert_eq!(correction("好的没问题"), None);
        // The old value said first, then denied: the new one is the other.
        let k = correction("3幢1单元501，不是501，是510").unwrap();
        assert_eq!((k.new.as_str(), k.old.as_deref()), ("510", Some("501")));
        // The last digit alone.
        let k = correction("号码报错了，最后一位是7").unwrap();
        assert!(k.tail && k.new == "7");
        // Short tails read in Chinese numerals.
        let k = correction("不对，卡号最后两位是二一").unwrap();
        assert!(k.tail && k.new == "21");
        let k = correction("说错了，最后一位是八").unwrap();
        assert!(k.tail && k.new == "8");
        let c = |s: &str| correction(s).map(|c| (c.new, c.old, c.tail));
        assert_eq!(
            c("是文三路88号，不过是4幢，不是3幢"),
            Some(("4幢".into(), Some("3幢".into()), false))
        );
        assert_eq!(
            c("门牌号不对，是602，不是502"),
            Some(("602".into(), Some("502".into()), false))
        );
        assert_eq!(
            c("不是502室，是602室"),
            Some(("602室".into(), Some("502室".into()), false))
        );
        assert_eq!(
            c("不对不对，最后四位是8889"),
            Some(("8889".into(), None, true))
        );
        assert_eq!(
            c("刚才说错了，手机尾号是1112"),
            Some(("1112".into(), None, true))
        );
        assert_eq!(
            c("账号是HZ20261234，不对，是HZ20261243"),
            Some(("HZ20261243".into(), None, false))
        );
    }

    #[test]
    fn serials_read_out_in_chinese_digits_between_letters() {
        assert_eq!(
            extract_serial("是Q S 二零二三 B 一一八九").as_deref(),
            Some("QS2023B1189")
        );
        assert_eq!(
            extract_serial("编号是A B 三三七 五零九").as_deref(),
            Some("AB337509")
        );
        assert_eq!(
            extract_serial("HZ 二零二六 一二三四").as_deref(),
            Some("HZ20261234")
        );
        // A number glued into words is no serial.
        assert_eq!(extract_serial("一一点半吧"), None);
    }

    #[test]
    fn amounts_before_a_unit() {
        assert_eq!(amounts_with_unit("十度", '度'), vec![10]);
        assert_eq!(amounts_with_unit("屋里才13度左右", '度'), vec![13]);
        assert_eq!(amounts_with_unit("我爸八十多岁了", '岁'), vec![80]);
        assert_eq!(amounts_with_unit("二十五度，挺暖和", '度'), vec![25]);
        assert!(amounts_with_unit("温度挺低", '度').is_empty());
    }

    #[test]
    fn serials_read_in_short_groups() {
        assert_eq!(
            extract_serial("编号是M，X，三九，七七，零二").as_deref(),
            Some("MX397702")
        );
        assert_eq!(
            extract_serial("会员卡 B T，四四零，一八六").as_deref(),
            Some("BT440186")
        );
        assert_eq!(
            extract_serial("订单号W、J、二零五五、六一").as_deref(),
            Some("WJ205561")
        );
        // Two whole values said one after the other stay apart.
        assert_ne!(
            extract_serial("卡号GX20261188，电话13900001111").as_deref(),
            Some("GX2026118813900001111")
        );
        // A pause word before the letters is no digit.
        assert_eq!(
            extract_serial("等一下，P，Q，三三零八").as_deref(),
            Some("PQ3308")
        );
    }

    #[test]
    fn address_numbers_are_written_in_digits() {
        assert_eq!(address_digits("十二号楼三单元四零二"), "12号楼3单元402");
        assert_eq!(
            address_digits("幸福苑七号楼二单元五零一"),
            "幸福苑7号楼2单元501"
        );
        assert_eq!(address_digits("三里屯一品苑六栋"), "三里屯一品苑6栋");
        assert_eq!(address_digits("东风路二十三号"), "东风路23号");
        assert_eq!(
            extract_address("净水器漏水了，编号QS2024A0567，地址是拱墅区湖墅南路188号2幢301")
                .as_deref(),
            Some("拱墅区湖墅南路188号2幢301")
        );
    }
}
