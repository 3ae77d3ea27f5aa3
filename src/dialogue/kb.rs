//! Knowledge-base retrieval: questions matched to Q&A entries by meaning.
//!
//! Lexical, not neural: Okapi BM25 over character bigrams (plus unigrams at a
//! low weight) after folding a small table of service-domain synonyms onto
//! canonical words. Measured on paraphrases (tests/dialogue_kb.rs) this finds
//! the right entry for the large majority of rewordings in microseconds, with no
//! model to ship. The confidence is the share of the query's informative
//! bigrams (IDF-weighted) that the best entry covers; below the threshold the
//! engine gives the holding answer instead of guessing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::encoder;
use super::script::QaEntry;
use super::text::{is_han, normalize};

/// Default confidence needed to answer from the KB.
pub const DEFAULT_THRESHOLD: f32 = 0.2;

/// Synonym groups: every variant is rewritten to the first word.
const SYNONYMS: &[&[&str]] = &[
    &["备份", "备分", "拷贝一份", "存档备份", "数据副本"],
    &["回滚", "还原", "回退", "恢复原状", "恢复", "退回去", "撤回"],
    &[
        "中断",
        "停服",
        "断掉",
        "断开",
        "停掉",
        "用不了",
        "不能用",
        "没法用",
        "停止服务",
        "暂停",
        "宕机",
        "停",
    ],
    &["值班", "值守", "盯着", "守着", "驻守", "轮班"],
    &["报告", "总结", "结论", "汇报"],
    &["日志", "记录", "log"],
    &[
        "通知",
        "告知",
        "通告",
        "告诉",
        "知会",
        "同步",
        "说一声",
        "打招呼",
        "打声招呼",
        "打个招呼",
        "打电话",
        "打个电话",
    ],
    &[
        "变更", "改动", "调整", "变化", "变动", "更改", "修改", "改变", "挪",
    ],
    &["邮件", "邮箱", "email", "电邮", "油箱"],
    &[
        "多久",
        "几天",
        "多快",
        "多长时间",
        "多少时间",
        "时长",
        "持续",
        "几个小时",
        "几分钟",
        "多长",
    ],
    &["共享", "网盘", "共享盘"],
    &[
        "周末",
        "周六",
        "周日",
        "星期六",
        "星期天",
        "星期日",
        "礼拜六",
        "礼拜天",
        "双休",
    ],
    &["营业", "开门", "开诊", "坐诊"],
    // Someone other than the caller ("我让我老公去拿" ~ "可以让别人帮我取吗").
    &[
        "别人",
        "家人",
        "家里人",
        "老公",
        "老婆",
        "爱人",
        "朋友",
        "邻居",
        "同事",
        "亲戚",
        "孩子",
    ],
    &["消息", "聊天", "即时通讯", "通讯", "im"],
    &["权限", "授权"],
    &[
        "详情",
        "细则",
        "细节",
        "明细",
        "详细",
        "具体内容",
        "清单",
        "列表",
    ],
    &["紧急", "突发", "出事", "出问题", "异常", "故障", "意外"],
    &[
        "费用",
        "收费",
        "花钱",
        "多少钱",
        "价格",
        "钱",
        "付费",
        "资费",
        "额外收费",
        "收多少",
    ],
    &["退款", "退钱", "返还", "退费"],
    &["取消", "不要了", "退掉", "撤销"],
    &["预约", "约时间", "预订", "约好"],
    &[
        "上门",
        "到家",
        "来家里",
        "过来",
        "入户",
        "有人来",
        "来人",
        "派人",
        "来一趟",
        "跑一趟",
    ],
    &["师傅", "工程师", "技术员", "安装工", "维修工", "技术人员"],
    // 装修 is its own word, not 装 (install) and 修 (repair).
    &["装修", "装潢", "翻修"],
    &["安装", "装机", "装"],
    &["账单", "扣费", "扣款", "扣了多少", "缴费记录", "消费记录"],
    &["查询", "查看", "哪能看", "哪里看", "在哪看", "去哪看"],
    &["无线", "wifi", "wlan", "无线网"],
    &["到期", "快到期", "过期"],
    &["准备", "收拾", "备好"],
    &["快递", "包裹"],
    &["地址", "住址", "位置"],
    &["电话", "手机", "号码", "联系方式"],
    &["密码", "口令"],
    &["账号", "帐号", "账户", "帐户"],
    &["网速", "速度", "带宽", "兆"],
    &["慢", "卡顿", "卡", "延迟高"],
    &[
        "断网",
        "没网",
        "网断",
        "网络断开",
        "上不了网",
        "连不上网",
        "连不上",
        "网没了",
        "掉网",
        "掉线",
        "网断了",
    ],
    &["销户", "注销", "报停", "不想用了", "不用了"],
    &["续费", "续上", "交钱续", "充值"],
    &["移机", "跟着搬", "搬家", "搬过去", "换地址", "换住址"],
    &["发票", "收据", "报销凭证"],
    &["营业时间", "几点上班", "几点下班", "什么时候上班"],
    &["提前", "事先", "预先", "之前"],
    &["看到", "拿到", "收到", "获取", "提供"],
    &["保障", "保证", "确保"],
    &["影响", "波及", "牵涉", "涉及"],
    &["范围", "哪些", "包括什么", "覆盖"],
    &["文档", "资料", "文件", "材料", "说明书"],
    &["进度", "进展"],
    &["响应", "回应", "处理"],
    &["归档", "存档", "留档", "保存"],
    &["维护", "检修", "升级", "运维"],
    &["时间", "时候", "几点", "哪天", "日子"],
    &["赔偿", "补偿", "赔"],
    &["投诉", "反映问题", "举报"],
    &["人工", "真人", "转人工", "客服人员"],
    &[
        "保修",
        "质保",
        "保修期",
        "保质期",
        "在保",
        "过保",
        "保修范围",
        "管几年",
        "管多久",
        "保几年",
        "保多久",
        "包修",
    ],
    &[
        "确认身份",
        "核对身份",
        "工牌",
        "工装",
        "冒充",
        "真假",
        "是不是你们",
        "你们的人",
        "你们公司的",
        "怎么认",
        "你们派",
    ],
    &["直接喝", "直接饮用", "能喝", "生喝", "直饮"],
    &["更换", "换新", "替换", "换一次", "要换"],
    &["送到", "到货", "送来", "寄到", "收到货", "送过来"],
    &["报修", "维修", "修理", "来修", "修一下", "坏了"],
];

/// Function words and question frames that say nothing about the topic.
const STOP: &[&str] = &[
    "请问",
    "问一下",
    "想问",
    "一下",
    "我想",
    "我们",
    "你们",
    "您们",
    "是不是",
    "能不能",
    "可不可以",
    "会不会",
    "有没有",
    "要不要",
    "怎么样",
    "怎么",
    "什么",
    "如何",
    "为什么",
    "这个",
    "那个",
    "这次",
    "那次",
    "就是",
    "还是",
    "然后",
    "的话",
    "知道",
    "告诉我",
    "麻烦",
    "一些",
    "能否",
    "是否",
    "可以",
    "需要",
    "现在",
];
const STOP_CHARS: &[char] = &[
    '啥', '的', '了', '吗', '呢', '吧', '啊', '呀', '嘛', '哦', '么', '那', '这', '个', '您', '你',
    '我', '他', '她', '是', '在', '有', '会', '能', '要', '和', '与', '及', '就', '都', '也', '还',
    '嗯', '呃', '哈', '啦', '喔', '给', '把', '被', '让', '对', '很', '吗',
];

/// Synonym variants sorted longest first, each with its canonical word.
fn synonym_table() -> &'static Vec<(Vec<char>, &'static str)> {
    static T: OnceLock<Vec<(Vec<char>, &'static str)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v: Vec<(Vec<char>, &'static str)> = SYNONYMS
            .iter()
            .flat_map(|g| g.iter().map(move |w| (w.chars().collect(), g[0])))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.0.len()));
        v
    })
}

/// Rewrites every synonym variant to its canonical word, longest match first,
/// scanning left to right so a variant inside a canonical word is not re-replaced.
fn fold_synonyms(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let table = synonym_table();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        match table.iter().find(|(v, _)| chars[i..].starts_with(v)) {
            Some((v, canon)) => {
                out.push_str(canon);
                out.push(' ');
                i += v.len();
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// What kind of answer a question wants, from its question words: two questions
/// about the same thing that want different kinds of answer ("保养要多久" and
/// "保养多少钱") are different questions, whatever words they share. "Where" and
/// "how" are left out: callers use them for the same question (车停哪里 / 怎么停车).
const ASKS_FOR: &[(&str, &[&str])] = &[
    (
        "\u{1}how-long",
        &[
            "多久",
            "多长时间",
            "多少时间",
            "几个小时",
            "几天",
            "多长",
            "要等",
            "得弄",
        ],
    ),
    (
        "\u{1}price",
        &[
            "多少钱",
            "收费",
            "花钱",
            "费用",
            "价格",
            "要钱",
            "收钱",
            "免费",
            "贵不贵",
            "怎么收",
            "收多少",
        ],
    ),
    (
        "\u{1}hours",
        &[
            "几点",
            "开门",
            "关门",
            "营业",
            "开诊",
            "上班时间",
            "下班时间",
            "周末开",
            "休息日",
        ],
    ),
    (
        "\u{1}bring",
        &[
            "带什么",
            "带哪些",
            "要带",
            "准备什么",
            "准备哪些",
            "证件",
            "需要带",
        ],
    ),
];

/// The answer kinds `question` asks for, as index terms.
fn asks_for(question: &str) -> Vec<(String, f32)> {
    let s = normalize(question);
    ASKS_FOR
        .iter()
        .filter(|(_, cues)| cues.iter().any(|c| s.contains(c)))
        .map(|(t, _)| (t.to_string(), 1.5))
        .collect()
}

/// A query or document turned into weighted terms.
fn terms(text: &str) -> Vec<(String, f32)> {
    let mut s = fold_synonyms(&normalize(text));
    for w in STOP {
        s = s.replace(w, " ");
    }
    let mut out = Vec::new();
    let mut run: Vec<char> = Vec::new();
    let mut word = String::new();
    let flush_run = |run: &mut Vec<char>, out: &mut Vec<(String, f32)>| {
        let kept: Vec<char> = run
            .iter()
            .copied()
            .filter(|c| !STOP_CHARS.contains(c))
            .collect();
        for w in kept.windows(2) {
            out.push((w.iter().collect(), 1.0));
        }
        for c in &kept {
            out.push((c.to_string(), 0.25));
        }
        run.clear();
    };
    for c in s.chars() {
        if is_han(c) {
            if !word.is_empty() {
                out.push((std::mem::take(&mut word), 1.0));
            }
            run.push(c);
        } else if c.is_ascii_alphanumeric() {
            flush_run(&mut run, &mut out);
            word.push(c);
        } else {
            flush_run(&mut run, &mut out);
            if !word.is_empty() {
                out.push((std::mem::take(&mut word), 1.0));
            }
        }
    }
    flush_run(&mut run, &mut out);
    if !word.is_empty() {
        out.push((word, 1.0));
    }
    out
}

/// A retrieval hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
    /// 0..1: share of the query's informative terms the entry covers.
    pub confidence: f32,
}

struct Doc {
    tf: HashMap<String, f32>,
    len: f32,
}

/// BM25 index over a script's Q&A entries.
pub struct KnowledgeBase {
    entries: Vec<QaEntry>,
    docs: Vec<Doc>,
    df: HashMap<String, usize>,
    avg_len: f32,
    pub threshold: f32,
    /// Encoder embeddings of the entries' questions (computed on first need).
    dense_entries: OnceLock<Option<Vec<Arc<Vec<f32>>>>>,
    /// The last queries' encoder results: a turn asks about its text and parts
    /// of it, several times each.
    memo: Mutex<std::collections::VecDeque<(String, Dense)>>,
}

impl KnowledgeBase {
    pub fn new(entries: &[QaEntry]) -> Self {
        let mut docs = Vec::with_capacity(entries.len());
        let mut df: HashMap<String, usize> = HashMap::new();
        for e in entries {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0;
            // The question counts twice: it is what callers paraphrase.
            for (t, w) in terms(&e.question)
                .into_iter()
                .chain(asks_for(&e.question))
                .map(|(t, w)| (t, w * 2.0))
                .chain(terms(&e.answer))
            {
                *tf.entry(t).or_default() += w;
                len += w;
            }
            for t in tf.keys() {
                *df.entry(t.clone()).or_default() += 1;
            }
            docs.push(Doc { tf, len });
        }
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            docs.iter().map(|d| d.len).sum::<f32>() / docs.len() as f32
        };
        Self {
            entries: entries.to_vec(),
            docs,
            df,
            avg_len,
            threshold: DEFAULT_THRESHOLD,
            dense_entries: OnceLock::new(),
            memo: Mutex::new(std::collections::VecDeque::with_capacity(MEMO_QUERIES)),
        }
    }

    pub fn entries(&self) -> &[QaEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn idf(&self, t: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.df.get(t).copied().unwrap_or(0) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The best entry for `query`, whatever its confidence.
    pub fn best(&self, query: &str) -> Option<Hit> {
        if self.docs.is_empty() {
            return None;
        }
        let mut q = terms(query);
        q.extend(asks_for(query));
        let (k1, b) = (1.2f32, 0.75f32);
        // Unknown bigrams count against coverage as if rare.
        let max_idf = self.idf("\u{0}");
        let known = |t: &str| self.df.contains_key(t);
        // An unknown bigram between two known ones that it overlaps ("里宽" in 家里宽带,
        // "带销" in 宽带销户) straddles a word boundary: it says nothing.
        let straddles = |k: usize| {
            let two = |x: &str| x.chars().count() == 2 && x.chars().all(is_han);
            let t = &q[k].0;
            let (Some(first), Some(last)) = (t.chars().next(), t.chars().last()) else {
                return false;
            };
            let prev = k
                .checked_sub(1)
                .and_then(|j| q.get(j))
                .is_some_and(|(p, _)| two(p) && p.ends_with(first) && known(p));
            let next = q
                .get(k + 1)
                .is_some_and(|(n, _)| two(n) && n.starts_with(last) && known(n));
            two(t) && prev && next
        };
        let counts: Vec<bool> = (0..q.len())
            .map(|k| {
                let (t, w) = &q[k];
                *w >= 1.0 && (known(t) || !straddles(k))
            })
            .collect();
        let mut total = 0.0f32;
        for (k, (t, _)) in q.iter().enumerate() {
            if counts[k] {
                // Other bigrams no entry contains count, but at half weight.
                total += if known(t) { self.idf(t) } else { 0.5 * max_idf };
            }
        }
        let mut best: Option<Hit> = None;
        for (i, d) in self.docs.iter().enumerate() {
            let mut score = 0.0f32;
            let mut covered = 0.0f32;
            for (k, (t, w)) in q.iter().enumerate() {
                if let Some(tf) = d.tf.get(t) {
                    let idf = self.idf(t);
                    score += w * idf * (tf * (k1 + 1.0))
                        / (tf + k1 * (1.0 - b + b * d.len / self.avg_len));
                    if counts[k] {
                        covered += idf;
                    }
                }
            }
            let confidence = if total > 0.0 {
                (covered / total).min(1.0)
            } else {
                0.0
            };
            if best.is_none_or(|h| score > h.score) {
                best = Some(Hit {
                    index: i,
                    score,
                    confidence,
                });
            }
        }
        best.filter(|h| h.score > 0.0)
    }

    /// The lexical entry to answer with, or `None` below the threshold.
    pub fn answer_lexical(&self, query: &str) -> Option<(Hit, &QaEntry)> {
        self.best(query)
            .filter(|h| h.confidence >= self.threshold)
            .map(|h| (h, &self.entries[h.index]))
    }

    /// The entry to answer with, or `None` ("I don't know"). A confident
    /// character match answers at once; otherwise the sentence encoder decides
    /// (when provisioned): its best entry must stand out from the other entries
    /// and from a background of unrelated questions, so a question the Q&A does
    /// not cover is not given a neighbour's answer.
    pub fn answer(&self, query: &str) -> Option<(Hit, &QaEntry)> {
        let lexical = self.best(query);
        let raw_lexical = lexical;
        if let Some(h) = lexical.filter(|h| h.confidence >= LEXICAL_SURE) {
            if std::env::var_os("KB_DEBUG").is_some() {
                eprintln!(
                    "kbtrace\t{query}\t{}\t{:.3}\tsure\t-\t-\t-\t{}",
                    h.index, h.confidence, h.index
                );
            }
            return Some((h, &self.entries[h.index]));
        }
        let weak = lexical.filter(|h| h.confidence >= AGREEMENT_FLOOR);
        let lexical = lexical.filter(|h| h.confidence >= self.threshold);
        let hit = match self.dense_memo(query) {
            // Two signals that agree: the encoder clearly prefers one entry but it is
            // only just above the background of unrelated questions, and the
            // characters, though few, point at the same entry.
            Dense::Ambiguous {
                top,
                score,
                clear_winner: true,
            } if lexical.is_none() => weak.filter(|l| l.index == top).map(|_| Hit {
                index: top,
                score,
                confidence: DENSE_CONFIDENCE,
            }),
            Dense::Unavailable => lexical,
            // The encoder cannot decide, and its favourite is another entry: a
            // weak character match ("锁" in a question about glass doors) is
            // a neighbour's answer, not this question's.
            Dense::Ambiguous { top, .. } => {
                lexical.filter(|l| l.index == top || l.confidence >= LEXICAL_OVERRULES)
            }
            // Agreement, or a character match good enough to overrule the encoder.
            Dense::Hit(d) => match lexical {
                Some(l) if l.index == d.index || l.confidence >= LEXICAL_OVERRULES => Some(l),
                _ => Some(d),
            },
            // Closer to unrelated questions than to any entry: "I don't know".
            // unless the characters match well.
            Dense::Unrelated => lexical.filter(|l| l.confidence >= LEXICAL_OVERRULES),
        };
        if std::env::var_os("KB_DEBUG").is_some() {
            let l = raw_lexical.map(|l| format!("{}\t{:.3}", l.index, l.confidence));
            let d = self.dense_scores(query).map(|d| {
                format!(
                    "{}\t{:.3}\t{:.3}\t{:.3}",
                    d.top, d.best, d.second, d.background
                )
            });
            eprintln!(
                "kbtrace\t{query}\t{}\t{}\t{}",
                l.unwrap_or_else(|| "-\t-".into()),
                d.unwrap_or_else(|| "-\t-\t-\t-".into()),
                hit.map(|h| h.index.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
        hit.map(|h| (h, &self.entries[h.index]))
    }

    /// Embeds the entries and the background now (start-up), so the first caller
    /// question of a call does not wait for them.
    pub fn warm_up(&self) {
        if !self.entries.is_empty() && encoder::available() {
            let _ = self.dense("warm-up");
            if let Ok(mut m) = self.memo.lock() {
                m.clear();
            }
        }
    }

    fn dense_memo(&self, query: &str) -> Dense {
        // A reply this short (没有了, 好的, 多少钱) is matched by its characters:
        // the encoder cannot tell such replies apart by meaning, and an embedding
        // costs 15-45 ms of the caller's wait.
        if query.chars().filter(|c| super::text::is_han(*c)).count() < MIN_DENSE_HAN {
            return Dense::Unavailable;
        }
        if let Ok(m) = self.memo.lock() {
            if let Some((_, d)) = m.iter().find(|(q, _)| q == query) {
                return *d;
            }
        }
        let d = self.dense(query);
        if let Ok(mut m) = self.memo.lock() {
            if m.len() == MEMO_QUERIES {
                m.pop_front();
            }
            m.push_back((query.to_string(), d));
        }
        d
    }

    /// Meaning-based retrieval with the sentence encoder.
    fn dense(&self, query: &str) -> Dense {
        let Some(DenseScores {
            top,
            best: s1,
            second: s2,
            background,
        }) = self.dense_scores(query)
        else {
            return Dense::Unavailable;
        };
        let m = margins();
        if s1 < background {
            Dense::Unrelated
        } else if s1 - background >= m.over_background && s1 - s2 >= m.over_second {
            Dense::Hit(Hit {
                index: top,
                score: s1,
                confidence: DENSE_CONFIDENCE,
            })
        } else {
            Dense::Ambiguous {
                top,
                score: s1,
                clear_winner: s1 - s2 >= m.over_second,
            }
        }
    }

    /// The encoder's cosines for `query`: the best entry, the runner-up and the
    /// closest of the unrelated background questions.
    fn dense_scores(&self, query: &str) -> Option<DenseScores> {
        if self.entries.is_empty() || !encoder::available() {
            return None;
        }
        let entries = self.dense_entries.get_or_init(|| {
            self.entries
                .iter()
                .flat_map(|e| {
                    [
                        encoder::passage(&e.question),
                        encoder::passage(&format!("{} {}", e.question, e.answer)),
                    ]
                })
                .collect::<Option<Vec<_>>>()
        });
        let (Some(entries), Some(q)) = (entries.as_ref(), encoder::query(query)) else {
            return None;
        };
        let mut scored: Vec<(usize, f32)> = entries
            .chunks(2)
            .enumerate()
            .map(|(i, e)| {
                (
                    i,
                    e.iter()
                        .map(|v| encoder::cosine(&q, v))
                        .fold(f32::MIN, f32::max),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (top, best) = scored[0];
        let second = scored.get(1).map(|x| x.1).unwrap_or(best - 1.0);
        let background = BACKGROUND
            .iter()
            .filter_map(|b| encoder::passage(b))
            .map(|b| encoder::cosine(&q, &b))
            .fold(f32::MIN, f32::max);
        Some(DenseScores {
            top,
            best,
            second,
            background,
        })
    }
}

/// What the encoder made of a query (see [`KnowledgeBase::dense_scores`]).
#[derive(Debug, Clone, Copy)]
struct DenseScores {
    top: usize,
    best: f32,
    second: f32,
    background: f32,
}

#[derive(Debug, Clone, Copy)]
enum Dense {
    /// No encoder: characters decide.
    Unavailable,
    /// One entry stands out.
    Hit(Hit),
    /// Entries close together, or the best barely above the background:
    /// characters decide (and confirm `top`, a `clear_winner` among the entries
    /// that is only close to the background, when they agree on it).
    Ambiguous {
        top: usize,
        score: f32,
        clear_winner: bool,
    },
    /// Nearer to the background of unrelated questions than to any entry.
    Unrelated,
}

/// Encoder results kept for queries asked again.
const MEMO_QUERIES: usize = 8;

/// Queries with fewer Chinese characters than this are matched by characters only.
const MIN_DENSE_HAN: usize = 5;

/// A character match this good answers without asking the encoder.
const LEXICAL_SURE: f32 = 0.45;
/// How far apart the encoder's scores must be to decide. Each backend has its own
/// range: e5's cosines sit between 0.8 and 0.9, USE's spread from 0 to 1.
#[derive(Debug, Clone, Copy)]
struct Margins {
    /// The best entry must beat the closest unrelated question by this much…
    over_background: f32,
    /// …and the runner-up entry by this much.
    over_second: f32,
}

const E5_MARGINS: Margins = Margins {
    over_background: 0.02,
    over_second: 0.015,
};

/// Chosen on the evaluation corpus (session 13): from 670/773 with e5's margins
/// to 686/773; e5 scores 688/773. Flat between 0.15 and 0.3 over the background.
const USE_MARGINS: Margins = Margins {
    over_background: 0.18,
    over_second: 0.06,
};

/// The margins of the loaded encoder.
fn margins() -> Margins {
    match encoder::kind() {
        Some(encoder::EncoderKind::UseM3) => USE_MARGINS,
        _ => E5_MARGINS,
    }
}
/// A character match this weak still confirms the encoder's clear favourite entry
/// when that is only just above the background (车停 in "我朋友开车来看我，车停哪里"
/// for "外来车辆怎么停车？").
const AGREEMENT_FLOOR: f32 = 0.05;
/// A character match this good wins when the encoder prefers another entry.
const LEXICAL_OVERRULES: f32 = 0.3;
/// Confidence reported for an encoder match: enough to answer a question, not
/// enough to turn a statement into one.
const DENSE_CONFIDENCE: f32 = 0.25;

/// Questions callers ask that no service script's Q&A answers, across domains:
/// the encoder's floor for "this is something else".
const BACKGROUND: &[&str] = &[
    "今天天气怎么样？",
    "明天会下雨吗？",
    "最近有什么好看的电影？",
    "你喜欢什么颜色？",
    "你会唱歌吗？",
    "世界上最高的山是哪座？",
    "这道数学题怎么做？",
    "你们公司在哪个城市？",
    "你们老板是谁？",
    "附近有什么好吃的餐馆？",
    "股票最近行情怎么样？",
    "你叫什么名字？",
    "你今年多大了？",
    "现在几点了？",
    "你们公司有多少员工？",
    "你们招人吗？",
    "怎么去火车站？",
    "机票多少钱一张？",
    "医院几点开门？",
    "孩子上学要准备什么？",
    "你们有没有优惠活动？",
    "能不能便宜一点？",
    "你们还卖别的产品吗？",
    "周末上班吗？",
    "怎么注册会员？",
    "积分怎么兑换？",
    "你们的网站是什么？",
    "有没有微信公众号？",
    "你是哪里人？",
    "你们的产品是哪里生产的？",
    "能用支付宝付款吗？",
    "你们和别的公司比有什么优势？",
    "停车场在哪里？",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> KnowledgeBase {
        let e = |q: &str, a: &str| QaEntry {
            question: q.into(),
            answer: a.into(),
            source_line: 0,
        };
        KnowledgeBase::new(&[
            e("师傅上门安装要收费吗？", "上门安装不收取任何费用。"),
            e("预约的时间能改吗？", "可以，提前一天来电即可改约。"),
            e("安装需要多长时间？", "一般一个小时左右完成。"),
        ])
    }

    #[test]
    fn paraphrases_find_their_entry() {
        let kb = kb();
        assert_eq!(
            kb.answer("装宽带要不要额外花钱").map(|x| x.0.index),
            Some(0)
        );
        assert_eq!(
            kb.answer("约好的时间可以调整吗").map(|x| x.0.index),
            Some(1)
        );
        assert_eq!(kb.answer("装一次得多久").map(|x| x.0.index), Some(2));
    }

    #[test]
    fn unrelated_questions_stay_below_threshold() {
        let kb = kb();
        assert!(kb.answer("你们公司股票代码是多少").is_none());
    }

    #[test]
    fn word_boundary_bigrams_do_not_dilute_a_match() {
        let e = |q: &str, a: &str| QaEntry {
            question: q.into(),
            answer: a.into(),
            source_line: 0,
        };
        let kb = KnowledgeBase::new(&[
            e("办理销户需要什么手续？", "带身份证到营业厅办理。"),
            e("宽带到期了怎么续费？", "公众号或者营业厅都能续费。"),
            e("宽带网速慢怎么办？", "先重启光猫。"),
            e("光猫灯是红的怎么办？", "线路故障，我们派人来修。"),
        ]);
        // 带销 straddles 宽带|销户: only the two words count.
        let glued = kb.best("宽带销户").unwrap();
        assert_eq!(glued.index, 0);
        assert!(glued.confidence > 0.5, "{glued:?}");
        // An unknown word of the caller's own still counts against the match.
        let other = kb.best("电视销户").unwrap();
        assert!(other.confidence < glued.confidence, "{other:?}");
        let mixed = kb.best("网速销户").unwrap();
        assert!(mixed.confidence >= 0.5, "{mixed:?}");
    }
}
