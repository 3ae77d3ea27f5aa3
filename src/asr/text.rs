//! Text clean-up after Whisper, and the normalisation used to score it (CER).
//!
//! Whisper base slips into traditional characters, invents its well-known
//! "subtitle" phrases on silence, and can loop on a token; these functions undo
//! each of those. [`normalize_for_cer`] makes reference and hypothesis comparable
//! (no punctuation, numbers spelled one way) so CER measures recognition only.

/// Phrases Whisper emits on silence or noise (learned from subtitled video). Only
/// phrases that a caller would practically never say: plain 谢谢 or 订阅 stay.
const SILENCE_PHRASES: &[&str] = &[
    "字幕由amaraorg社区提供",
    "amaraorg",
    "字幕志愿者",
    "中文字幕",
    "字幕by",
    "字幕制作",
    "字幕",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "请不吝点赞",
    "点赞订阅",
    "订阅转发",
    "转发打赏",
    "打赏支持",
    "明镜与点点",
    "明镜需要您的支持",
    "欢迎订阅",
    "请订阅",
    "谢谢观看",
    "感谢观看",
    "谢谢收看",
    "感谢收看",
    "感谢您的观看",
    "谢谢大家收看",
    "我们下期再见",
    "下期再见",
    "优优独播剧场",
    "yoyotelevisionseriesexclusive",
    "本节目",
    "索兰娅",
];

/// Simplified Chinese for any traditional characters (phrase-aware where the
/// `fast2s` table knows the context, e.g. 乾 in 乾隆 vs 干).
pub fn to_simplified(s: &str) -> String {
    fast2s::convert(s)
}

/// Removes Whisper's silence phrases; returns the rest (possibly empty) and whether
/// anything was removed. Matching ignores case, spaces and punctuation.
pub fn strip_silence_phrases(s: &str) -> (String, bool) {
    let mut out: String = s.to_string();
    let mut hit = false;
    // Compare on a squeezed lowercase copy, but cut from the original so punctuation
    // between real words survives.
    loop {
        let (squeezed, map) = squeeze(&out);
        let found = SILENCE_PHRASES
            .iter()
            .find_map(|p| squeezed.find(p).map(|at| (at, p.len())));
        let Some((at, len)) = found else { break };
        hit = true;
        let start = map[at];
        let end = map[at + len - 1]
            + out[map[at + len - 1]..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        out.replace_range(start..end, "");
    }
    if hit && !has_content(&out) {
        out.clear();
    }
    (out.trim().to_string(), hit)
}

/// Lowercased string without whitespace/punctuation, and for each byte of it the
/// byte offset of the source character.
fn squeeze(s: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(s.len());
    let mut map = Vec::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if is_punct_or_space(c) {
            continue;
        }
        for lc in c.to_lowercase() {
            let before = out.len();
            out.push(lc);
            map.extend(std::iter::repeat_n(i, out.len() - before));
        }
    }
    (out, map)
}

/// True for whitespace, ASCII and CJK punctuation and symbols.
pub fn is_punct_or_space(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(c as u32, 0x3000..=0x303F | 0xFF00..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65 | 0x2000..=0x206F)
        || matches!(
            c,
            '·' | '…' | '—' | '～' | '「' | '」' | '『' | '』' | '《' | '》' | '〈' | '〉'
        )
}

/// True if `s` has at least one letter, digit or CJK character.
pub fn has_content(s: &str) -> bool {
    s.chars().any(|c| !is_punct_or_space(c))
}

/// Removes Whisper's decoding loops. A short unit (1–3 characters) may repeat
/// `max_short_repeats` times (对对对 is real speech); a longer unit (a phrase or the
/// whole sentence said again) is kept once, and a trailing cut-off copy of it (the
/// token limit hit mid-loop) is dropped. Returns the text and whether a loop was found.
pub fn collapse_repetitions(s: &str, max_short_repeats: usize) -> (String, bool) {
    let chars: Vec<char> = s.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(chars.len());
    let mut i = 0;
    let mut found = false;
    'outer: while i < chars.len() {
        let max_unit = (chars.len() - i) / 2;
        // Shortest period first: 我我我我 is one character looping, not two pairs.
        for unit in 1..=max_unit {
            // A unit closed by a full stop is a sentence said again (是的。是的。):
            // a loop, unlike 对对对.
            let sentence = matches!(chars[i + unit - 1], '。' | '？' | '！' | '.' | '?' | '!');
            let allowed = if unit <= 3 && !sentence {
                max_short_repeats
            } else {
                1
            };
            let pat = &chars[i..i + unit];
            // Ignore punctuation-only units and units that start with punctuation.
            if !pat.iter().any(|&c| !is_punct_or_space(c)) || is_punct_or_space(pat[0]) {
                continue;
            }
            let mut reps = 1;
            while i + unit * (reps + 1) <= chars.len()
                && &chars[i + unit * reps..i + unit * (reps + 1)] == pat
            {
                reps += 1;
            }
            if reps > allowed {
                found = true;
                for _ in 0..allowed {
                    out.extend_from_slice(pat);
                }
                i += unit * reps;
                // A cut-off copy at the very end (at least 2 characters of the unit).
                let rest = &chars[i..];
                if unit >= 4 && rest.len() >= 2 && rest.len() < unit && pat.starts_with(rest) {
                    i = chars.len();
                }
                continue 'outer;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    (out.into_iter().collect(), found)
}

/// Whether a transcript looks like a decoding loop that [`collapse_repetitions`]
/// cannot undo: a run of 5 or more characters (punctuation ignored) said again
/// later in the text, e.g. the second half of a sentence repeated after the whole
/// one. Read speech in the evaluation set never repeats 5 characters; a caller who
/// really repeats a phrase is re-decoded, which costs time but no words.
pub fn looks_looped(s: &str) -> bool {
    const MIN_RUN: usize = 5;
    let c: Vec<char> = s.chars().filter(|&c| !is_punct_or_space(c)).collect();
    if c.len() < 2 * MIN_RUN {
        return false;
    }
    (0..=c.len() - 2 * MIN_RUN).any(|i| {
        let pat = &c[i..i + MIN_RUN];
        c[i + MIN_RUN..].windows(MIN_RUN).any(|w| w == pat)
    })
}

/// Drops what follows the first sentence that the decoder then said again: Whisper
/// often repeats a whole sentence (or its start, cut off at the token limit) after
/// the real one, with a character or two changed, which [`collapse_repetitions`]
/// cannot match. A later sentence is dropped, with all after it, when it shares a
/// 5-character run with the text before it ([`looks_looped`]); a trailing U+FFFD
/// (a character cut in half by the token limit) goes too. So does an unfinished
/// last sentence that is only the start of the first one said again ("我家净水器
/// 在漏水。我家净水": the decoder restarting on the clip's padding). Returns the
/// text and whether anything was dropped.
pub fn drop_repeated_tail(s: &str) -> (String, bool) {
    let mut kept = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .find(|&(_, c)| matches!(c, '。' | '？' | '！' | '.' | '?' | '!'))
            .map_or(rest.len(), |(i, c)| i + c.len_utf8());
        let sentence = &rest[..end];
        if !kept.is_empty() && looks_looped(&format!("{kept}{sentence}")) && !looks_looped(&kept) {
            return (kept, true);
        }
        if !kept.is_empty() && end == rest.len() && is_restart(&kept, sentence) {
            return (kept, true);
        }
        kept.push_str(sentence);
        rest = &rest[end..];
    }
    let trimmed = kept.trim_end_matches('\u{FFFD}');
    let cut = trimmed.len() != kept.len();
    (trimmed.to_string(), cut)
}

/// Whether an unfinished `tail` is the beginning of `text` said again.
fn is_restart(text: &str, tail: &str) -> bool {
    let bare = |t: &str| -> Vec<char> { t.chars().filter(|c| !is_punct_or_space(*c)).collect() };
    // The token limit may have cut the restart's last character in half.
    let (text, tail) = (bare(text), bare(tail.trim_end_matches('\u{FFFD}')));
    !tail.is_empty() && tail.len() < text.len() && text.starts_with(&tail)
}

/// Chinese (full-width) punctuation where Whisper wrote ASCII next to Chinese text,
/// so the dialogue engine and records see one style. A '.' between digits (3.5) or
/// in Latin text stays.
pub fn fullwidth_punctuation(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let is_cjk = |c: Option<&char>| c.is_some_and(|c| ('\u{4e00}'..='\u{9fff}').contains(c));
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 { chars.get(i - 1) } else { None };
        let next = chars.get(i + 1);
        let near_cjk =
            is_cjk(prev) || (prev.is_none_or(|p| !p.is_ascii_alphanumeric()) && is_cjk(next));
        let mapped = match c {
            ',' if near_cjk => '，',
            '?' if near_cjk => '？',
            '!' if near_cjk => '！',
            ';' if near_cjk => '；',
            ':' if is_cjk(prev) => '：',
            '.' if is_cjk(prev) && next.is_none_or(|n| !n.is_ascii_digit()) => '。',
            c => c,
        };
        out.push(mapped);
    }
    out
}

/// Modern standard forms for variant spellings Whisper picks from old subtitles
/// (帐 for 账 in account words), after traditional→simplified conversion.
pub fn standardise_variants(s: &str) -> String {
    const PAIRS: &[(&str, &str)] = &[
        ("帐单", "账单"),
        ("帐户", "账户"),
        ("帐号", "账号"),
        ("帐目", "账目"),
        ("转帐", "转账"),
        ("算帐", "算账"),
        ("到帐", "到账"),
        ("定单", "订单"),
    ];
    let mut out = s.to_string();
    for (from, to) in PAIRS {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Normalises text for character error rate: simplified characters, no punctuation
/// or spaces, lowercase Latin, and every number in one spelling (Chinese numerals:
/// years and long digit strings digit by digit, other integers as cardinals,
/// `%` as 百分之, `9:30` as 九点三十), with 两→二, 幺→一, 〇→零.
pub fn normalize_for_cer(s: &str) -> String {
    normalize_reading(s, 0).0
}

/// [`normalize_for_cer`] where plain integers of 2 to 4 digits (no `%`, `:`, `.`
/// or `年` after them) may be read either way: bit `k` of `digitwise` reads the
/// k-th such number digit by digit (138 → 一三八, as a phone number or a room is
/// read) instead of as a cardinal (一百三十八). Returns the text and how many such
/// numbers it has.
fn normalize_reading(s: &str, digitwise: u32) -> (String, usize) {
    let mut ambiguous = 0usize;
    let s = to_simplified(s);
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let next = chars.get(i).copied();
            // Percent: 50% → 百分之五十.
            if next == Some('%') || next == Some('％') {
                out.push_str("百分之");
                out.push_str(&cardinal_or_digits(&run));
                i += 1;
                continue;
            }
            // Clock time: 9:30 → 九点三十, 9:00 → 九点.
            if next == Some(':') || next == Some('：') {
                let mstart = i + 1;
                let mut j = mstart;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if j > mstart {
                    let minutes: String = chars[mstart..j].iter().collect();
                    out.push_str(&cardinal_or_digits(&run));
                    out.push('点');
                    if minutes.trim_start_matches('0').is_empty() {
                        // 9:00 is just 九点
                    } else {
                        out.push_str(&cardinal_or_digits(minutes.trim_start_matches('0')));
                    }
                    i = j;
                    continue;
                }
            }
            // Decimal: 3.5 → 三点五.
            if next == Some('.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                out.push_str(&cardinal_or_digits(&run));
                out.push('点');
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    out.push(DIGITS[chars[i] as usize - '0' as usize]);
                    i += 1;
                }
                continue;
            }
            if next == Some('年') {
                out.extend(run.chars().map(|d| DIGITS[d as usize - '0' as usize]));
            } else if (2..=4).contains(&run.len()) && !run.starts_with('0') {
                if ambiguous < 32 && digitwise & (1 << ambiguous) != 0 {
                    out.extend(run.chars().map(|d| DIGITS[d as usize - '0' as usize]));
                } else {
                    out.push_str(&cardinal_or_digits(&run));
                }
                ambiguous += 1;
            } else {
                out.push_str(&cardinal_or_digits(&run));
            }
            continue;
        }
        i += 1;
        if is_punct_or_space(c) {
            continue;
        }
        match c {
            '两' => out.push('二'),
            '幺' => out.push('一'),
            '〇' => out.push('零'),
            c if c.is_ascii_alphabetic() => out.push(c.to_ascii_lowercase()),
            c => out.push(c),
        }
    }
    (out, ambiguous)
}

/// Every reading of `s` by [`normalize_reading`] (at most 16: the first four
/// ambiguous numbers vary).
fn readings(s: &str) -> Vec<String> {
    let (first, n) = normalize_reading(s, 0);
    let mut out = vec![first];
    for mask in 1..(1u32 << n.min(4)) {
        out.push(normalize_reading(s, mask).0);
    }
    out
}

/// Cardinal reading for short numbers, digit by digit for long ones or leading zeros.
fn cardinal_or_digits(run: &str) -> String {
    if run.len() >= 5 || (run.len() > 1 && run.starts_with('0')) {
        return run
            .chars()
            .map(|d| DIGITS[d as usize - '0' as usize])
            .collect();
    }
    let n: u32 = run.parse().unwrap_or(0);
    cardinal(n)
}

/// Chinese cardinal for 0..=9999 (十五, 一百零五, 两千 is written 二千).
fn cardinal(n: u32) -> String {
    if n == 0 {
        return "零".to_string();
    }
    let units = ['千', '百', '十'];
    let parts = [n / 1000 % 10, n / 100 % 10, n / 10 % 10];
    let mut out = String::new();
    let mut zero = false;
    for (k, &d) in parts.iter().enumerate() {
        if d == 0 {
            if !out.is_empty() {
                zero = true;
            }
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        // 十五 not 一十五 when the number starts with ten.
        if !(k == 2 && d == 1 && out.is_empty()) {
            out.push(DIGITS[d as usize]);
        }
        out.push(units[k]);
    }
    let d = n % 10;
    if d != 0 {
        if zero {
            out.push('零');
        }
        out.push(DIGITS[d as usize]);
    }
    out
}

/// Levenshtein distance between two character sequences.
pub fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character errors and reference length after [`normalize_for_cer`] of both.
/// A 2-4 digit number counts as right in either reading (138 matches 一三八 and
/// 一百三十八); the reference length is that of its cardinal reading.
pub fn char_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let refs = readings(reference);
    let hyps = readings(hypothesis);
    let len = refs[0].chars().count();
    let mut best = usize::MAX;
    for r in &refs {
        let r: Vec<char> = r.chars().collect();
        for h in &hyps {
            let h: Vec<char> = h.chars().collect();
            best = best.min(edit_distance(&r, &h));
        }
    }
    (best, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_count_in_either_reading() {
        assert_eq!(char_errors("房间一三八", "房间138"), (0, 5));
        assert_eq!(char_errors("一百三十八元", "138元"), (0, 6));
        assert_eq!(char_errors("幺三八", "138"), (0, 3));
        assert_eq!(char_errors("一三九", "138").0, 1);
        assert_eq!(char_errors("百分之五十", "50%"), (0, 5));
    }

    #[test]
    fn a_sentence_said_again_with_changes_is_dropped() {
        let (t, cut) =
            drop_repeated_tail("时间进距离真查和情报收集任务。实现进距离真查和情报收集任务。");
        assert_eq!((t.as_str(), cut), ("时间进距离真查和情报收集任务。", true));
        let (t, cut) = drop_repeated_tail("大力发展现在农作物众业。大力发展现在农作物\u{FFFD}");
        assert_eq!((t.as_str(), cut), ("大力发展现在农作物众业。", true));
        let (t, cut) = drop_repeated_tail("好的。我知道了。谢谢您。");
        assert_eq!((t.as_str(), cut), ("好的。我知道了。谢谢您。", false));
    }

    #[test]
    fn an_unfinished_restart_of_the_first_sentence_is_dropped() {
        let (t, cut) = drop_repeated_tail("包裹能在驿站放多久。包裹");
        assert_eq!((t.as_str(), cut), ("包裹能在驿站放多久。", true));
        let (t, cut) = drop_repeated_tail("包裹能在驿站放多久。包裹\u{FFFD}");
        assert_eq!((t.as_str(), cut), ("包裹能在驿站放多久。", true));
        let (t, cut) = drop_repeated_tail("保修期内，上门收费吗。保");
        assert_eq!((t.as_str(), cut), ("保修期内，上门收费吗。", true));
        // A finished second sentence, or an unfinished one that is not the start
        // of the first, is what the caller said.
        for s in ["好的。好的。", "好的。我再想想", "包裹到了。包裹放门口"] {
            assert_eq!(drop_repeated_tail(s), (s.to_string(), false), "{s}");
        }
    }

    #[test]
    fn a_repeated_half_sentence_is_a_loop_but_short_repeats_are_not() {
        assert!(looks_looped(
            "我国的经济处在爬坡过坎的重要关口，爬坡过坎的重要关口"
        ));
        assert!(!looks_looped("我国的经济处在爬坡过坎的重要关口"));
        assert!(!looks_looped("对对对，是的是的，好的好的"));
        assert!(!looks_looped(
            "提高农业现代化水平农民生活水平和新农村建设水平"
        ));
    }

    #[test]
    fn traditional_becomes_simplified() {
        assert_eq!(
            to_simplified("請問您還需要什麼服務嗎"),
            "请问您还需要什么服务吗"
        );
        assert_eq!(to_simplified("已经是简体"), "已经是简体");
    }

    #[test]
    fn silence_phrases_are_removed_but_real_words_stay() {
        assert_eq!(strip_silence_phrases("字幕由Amara.org社区提供").0, "");
        assert_eq!(
            strip_silence_phrases("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目").0,
            ""
        );
        assert_eq!(strip_silence_phrases("谢谢观看！").0, "");
        let (t, hit) = strip_silence_phrases("好的，谢谢观看");
        assert!(hit);
        assert_eq!(t, "好的，");
        assert_eq!(
            strip_silence_phrases("好的，谢谢。"),
            ("好的，谢谢。".to_string(), false)
        );
        assert_eq!(strip_silence_phrases("我想取消订阅").0, "我想取消订阅");
    }

    #[test]
    fn loops_are_collapsed() {
        assert_eq!(
            collapse_repetitions("我我我我我我我我", 2),
            ("我我".to_string(), true)
        );
        assert_eq!(
            collapse_repetitions("好的好的好的好的好的好的", 2),
            ("好的好的".to_string(), true)
        );
        assert_eq!(
            collapse_repetitions("对对对，没问题", 3),
            ("对对对，没问题".to_string(), false)
        );
        assert_eq!(
            collapse_repetitions("是的。是的。是的。", 3),
            ("是的。".to_string(), true)
        );
        assert_eq!(
            collapse_repetitions("好的，好的", 3),
            ("好的，好的".to_string(), false)
        );
    }

    #[test]
    fn ascii_punctuation_next_to_chinese_becomes_full_width() {
        assert_eq!(fullwidth_punctuation("不是,你打错了."), "不是，你打错了。");
        assert_eq!(fullwidth_punctuation("请问您在家吗?"), "请问您在家吗？");
        assert_eq!(fullwidth_punctuation("大约3.5小时"), "大约3.5小时");
        assert_eq!(fullwidth_punctuation("OK, fine."), "OK, fine.");
    }

    #[test]
    fn variant_spellings_are_standardised() {
        assert_eq!(
            standardise_variants("请把帐单发给我，帐户余额"),
            "请把账单发给我，账户余额"
        );
        assert_eq!(standardise_variants("您的定单"), "您的订单");
    }

    #[test]
    fn numbers_normalise_one_way() {
        assert_eq!(normalize_for_cer("下午3点"), "下午三点");
        assert_eq!(normalize_for_cer("15分钟"), normalize_for_cer("十五分钟"));
        assert_eq!(normalize_for_cer("105"), "一百零五");
        assert_eq!(normalize_for_cer("2000"), "二千");
        assert_eq!(normalize_for_cer("两千"), "二千");
        assert_eq!(normalize_for_cer("2025年"), "二零二五年");
        assert_eq!(normalize_for_cer("13800138000"), "一三八零零一三八零零零");
        assert_eq!(normalize_for_cer("幺三八"), "一三八");
        assert_eq!(normalize_for_cer("9:30"), "九点三十");
        assert_eq!(normalize_for_cer("0:00"), "零点");
        assert_eq!(normalize_for_cer("50%"), "百分之五十");
        assert_eq!(normalize_for_cer("好的，谢谢！ OK"), "好的谢谢ok");
        assert_eq!(normalize_for_cer("3.5"), "三点五");
    }

    #[test]
    fn cer_counts_edits() {
        assert_eq!(char_errors("今天下午三点", "今天下午3点"), (0, 6));
        assert_eq!(char_errors("今天下午三点", "今天上午三点"), (1, 6));
        assert_eq!(char_errors("好的", ""), (2, 2));
        assert_eq!(char_errors("好的", "好的啊"), (1, 2));
    }
}
