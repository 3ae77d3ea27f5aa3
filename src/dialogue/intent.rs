//! Reply classifier for Mandarin callee utterances after ASR.
//!
//! Keyword families matched on characters and, for words of two or more
//! characters, on folded pinyin (so 油箱/邮箱, 在说/再说, 不方变/不方便 match),
//! with punctuation ignored. Families are checked in priority order: a hostile
//! remark wins over anything else, a repeat request over a question, a question
//! over a bare "嗯". The engine interprets the result in the context of the step.

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use super::text::{extract_email, normalize, Keywords, Phonetic};
use super::timeparse::{parse_callback_time, CallbackTime};

/// A danger to life the caller reports: whatever the script is about, a careful
/// agent first tells them whom to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Danger {
    /// Chest pain, breathlessness, someone unconscious: 120.
    Medical,
    /// Fire or smoke: 119.
    Fire,
    /// A gas smell or leak: leave, no switches, the gas company or 119.
    Gas,
    /// Violence or a break-in: 110.
    Crime,
}

/// The danger `text` reports, if any. Hypotheticals ("要是燃气泄漏了怎么办") and
/// negations ("胸口没有疼") are questions or reassurance, not emergencies.
pub fn danger(text: &str) -> Option<Danger> {
    const HYPOTHETICAL: &[&str] = &["要是", "如果", "万一", "假如", "假设", "的话", "怎么预防"];
    // "我妈前几天晕倒过，想约个神经内科": a past event, told to book a visit.
    const PAST: &[&str] = &[
        "前几天",
        "之前",
        "以前",
        "上次",
        "上个月",
        "去年",
        "前段时间",
    ];
    if HYPOTHETICAL.iter().chain(PAST).any(|w| text.contains(w)) {
        return None;
    }
    const TABLE: &[(Danger, &[&str])] = &[
        (
            Danger::Medical,
            &[
                "胸口疼",
                "胸口痛",
                "胸口闷得",
                "胸痛",
                "心口疼",
                "心口痛",
                "喘不上气",
                "喘不过气",
                "上不来气",
                "呼吸困难",
                "昏迷",
                "晕倒",
                "昏倒",
                "不省人事",
                "叫不醒",
                "抽搐",
                "大出血",
                "血止不住",
                "中风",
                "口眼歪斜",
                "心梗",
                "心脏病犯",
                "喝了农药",
                "吃了一瓶药",
            ],
        ),
        (Danger::Fire, &["着火", "起火", "失火", "火灾", "烧起来了"]),
        (
            Danger::Gas,
            &[
                "煤气泄漏",
                "燃气泄漏",
                "煤气泄露",
                "燃气泄露",
                "臭鸡蛋味",
                "臭鸡蛋的味",
                "天然气泄漏",
                "煤气味",
                "燃气味",
                "天然气味",
                "煤气漏",
                "燃气漏",
                "天然气漏",
            ],
        ),
        (
            Danger::Crime,
            &[
                "抢劫",
                "有人闯进",
                "有人撬门",
                "被人打了",
                "有人打我",
                "要杀",
            ],
        ),
    ];
    for (kind, words) in TABLE {
        for w in *words {
            let Some(at) = text.find(w) else { continue };
            let before: String = text[..at].chars().rev().take(2).collect();
            let past = text[at + w.len()..].starts_with('过');
            if !before.contains(['没', '不', '无']) && !past {
                return Some(*kind);
            }
        }
    }
    None
}

/// What a callee utterance means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Yes / go on / I'm listening.
    Agree,
    /// "No" as an answer (没有, 不用了): not a refusal of the call.
    Negative,
    /// Refuses the call or its purpose.
    Decline,
    /// Busy now; wants a callback (maybe with a time).
    NotConvenient,
    /// Asks to repeat.
    Repeat,
    /// Asks a question.
    Question,
    /// Asks whether they are talking to a machine.
    AskIdentity,
    /// Wants documents / e-mail.
    DocsRequest,
    /// Mentions a special need (night shift, key task).
    SpecialNeed,
    /// An explicit do-not-call request ("别再打了", "把我号码删掉"). Nothing
    /// else puts a caller on the do-not-call list: a worried question
    /// ("你们不会是骗子吧？") is a question, an insult is [`Intent::Abusive`].
    Hostile,
    /// Insults without a do-not-call request: apologise and end, no list.
    Abusive,
    /// Asks for a person (转人工, 找真人, 人工客服, 接线员).
    Transfer,
    /// Wrong person / wrong number.
    WrongPerson,
    /// Ends the call.
    Goodbye,
    /// Small talk unrelated to the call.
    OffTopic,
    /// Anything else: free-form content.
    Statement,
    /// Asks the agent to hold on (稍等, 等一下).
    Hold,
    /// Nothing was said.
    Silence,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Agree => "agree",
            Intent::Negative => "negative",
            Intent::Decline => "decline",
            Intent::NotConvenient => "not_convenient",
            Intent::Repeat => "repeat",
            Intent::Question => "question",
            Intent::AskIdentity => "ask_identity",
            Intent::DocsRequest => "docs_request",
            Intent::SpecialNeed => "special_need",
            Intent::Hostile => "hostile",
            Intent::Abusive => "abusive",
            Intent::Transfer => "transfer",
            Intent::WrongPerson => "wrong_person",
            Intent::Goodbye => "goodbye",
            Intent::OffTopic => "off_topic",
            Intent::Statement => "statement",
            Intent::Hold => "hold",
            Intent::Silence => "silence",
        }
    }
}

/// A classified utterance with the slots found in it.
#[derive(Debug, Clone)]
pub struct Classified {
    pub intent: Intent,
    pub text: String,
    pub email: Option<String>,
    pub callback: Option<CallbackTime>,
    /// Mentions documents even when another intent won.
    pub wants_docs: bool,
    /// Sounds like a question (markers or wh-words).
    pub question_like: bool,
    /// Contains a "no" word (没有, 不用, 不是).
    pub negative_word: Option<String>,
    /// Frustrated or angry (打了三次了, 到底有没有人管): acknowledge before answering.
    pub upset: bool,
}

struct Families {
    hold: Keywords,
    hostile: Keywords,
    abusive: Keywords,
    upset: Keywords,
    transfer: Keywords,
    wrong: Keywords,
    repeat: Keywords,
    busy: Keywords,
    callback_verbs: Keywords,
    decline: Keywords,
    docs: Keywords,
    identity: Keywords,
    question: Keywords,
    not_question: Keywords,
    special: Keywords,
    goodbye: Keywords,
    negative: Keywords,
    agree: Keywords,
    off_topic: Keywords,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        hold: Keywords::new(&[
            "稍等",
            "等一下",
            "等一等",
            "等下",
            "等我一下",
            "你等会",
            "先别挂",
            "别挂",
        ]),
        hostile: Keywords::new(&[
            "别再打",
            "不要再打",
            "别打了",
            "不要打了",
            "再打我就",
            "以后别打",
            "以后不要打",
            "再也别打",
            "别再给我打",
            "不要再给我打",
            "别给我打电话",
            "不要给我打电话",
            "别再联系",
            "不要再联系",
            "别联系我",
            "不要联系我",
            "删掉我的号码",
            "删了我的号码",
            "把我号码删",
            "把我的号码删",
            "号码删掉",
            "号码删了",
            "删除我的号码",
            "把我拉黑",
            "拉入黑名单",
            "加入黑名单",
            "免打扰",
            "以后不要再",
            "以后别再",
        ]),
        abusive: Keywords::new(&[
            "滚蛋",
            "滚开",
            "你滚",
            "神经病",
            "去死",
            "闭嘴",
            // The curse, not 他妈妈 ("我是他妈妈", his mother answering).
            "他妈的",
            "你他妈",
            "去你妈",
            "有病吧",
            "你有病",
        ]),
        upset: Keywords::new(&[
            // Not answered, badly treated, let down.
            "没人接",
            "还想不想做",
            "想不想干了",
            "态度差",
            "态度不好",
            "态度很差",
            "爱理不理",
            "不靠谱",
            "心里不舒服",
            "心里很不舒服",
            "烦死了",
            "烦不烦",
            "有完没完",
            "投诉",
            "到底有没有人管",
            "没人管",
            "有没有人管",
            "打了好几次",
            "打了三次",
            "打了两次",
            "打了几次",
            "第三回",
            "第三次打",
            "第二回",
            "第二次打",
            "好几回",
            "每回都说",
            "每次都说",
            "也没人来",
            "还没人来",
            "没人来",
            "好几遍",
            "气死",
            "太差",
            "什么破",
            "搞什么",
            "急死了",
            "等了半天",
            // Rhetorical complaints: "至于打电话来催吗", "什么道理", "客服是摆设吗".
            "至于打",
            "至于吗",
            "至于这样",
            "什么道理",
            "凭什么",
            "是摆设",
            "打不进来",
            "才打进来",
            "才打通",
            // Hard times the caller brings up: "我最近住院了，哪有空…".
            "住院了",
            "住院呢",
            "在住院",
            "哪有空",
            "等了好久",
            "等了好几天",
            "还没修好",
            "一直没人",
            "受不了",
            "太过分",
            "怎么回事啊",
            "怎么搞的",
            "太慢了",
            "耽误",
            "到底",
            "都说了",
            "说了多少遍",
            "等了一下午",
            "等了一上午",
            "等了一个多小时",
            "等了一天",
            "白等",
            "放鸽子",
            "爽约",
            "没来",
            "白交",
            "白花",
            "交了钱",
            "疼了",
            "疼死",
            "受罪",
            "不负责",
            "离谱",
            "过分",
            "什么服务",
            "什么态度",
            "来气",
            "生气",
            "窝火",
            "火大",
            "心烦",
            "烦心",
            "闹心",
            "糟心",
            "憋屈",
            "恼火",
            "急死人",
            "不靠谱",
            "太失望",
            "糟糕",
            "差劲",
            "失望",
            "生气",
            "火大",
            "闹心",
            "听不清楚",
            "一点都听不见",
            // Exasperation: a complaint with 死了 or money thrown away.
            "慢死",
            "卡死",
            "吵死",
            "冻死",
            "冷死",
            "热死",
            "打水漂",
            "白扔",
        ]),
        transfer: Keywords::new(&[
            // Any other verb with a lone 人工 (我要个人工, Whisper's 我要在人工 for a
            // quick 转人工) is `asks_for_rengong`'s; 接人工 is there too, since it
            // sounds like 解人工 (了解人工智能).
            "转人工",
            "人工客服",
            "人工服务",
            "找人工",
            "要人工",
            "转接人工",
            "人工坐席",
            "真人客服",
            "找真人",
            "转真人",
            "要真人",
            "换真人",
            "跟真人",
            "和真人",
            "让真人",
            "让个真人",
            "真人来",
            "真人说",
            "人工台",
            "人工服务台",
            "主管",
            "能做主",
            "管事的",
            "管这个的",
            "管这事的",
            "管这块的",
            "换个人说",
            // "想给全班办集体借阅，这个找谁谈": asking whom to deal with is asking
            // for a person.
            "找谁谈",
            "找谁办",
            "找谁对接",
            "找谁联系",
            "找哪个部门",
            "哪个部门管",
            "换个人接",
            "换个人跟我",
            "说了算的",
            "找个人来",
            "找个人处理",
            "负责人",
            "领导",
            "前台的人",
            "找前台",
            "转前台",
            "让前台",
            "前台接",
            "工作人员接",
            "找工作人员",
            "让工作人员",
            "转工作人员",
            "工作人员来",
            "真人顾问",
            "人工顾问",
            "转一下人工",
            "叫个人来",
            "本人给我回",
            "本人回电",
            "本人跟我",
            "找个人跟我说",
            "找个真人",
            "接线员",
            "话务员",
            "找你们领导",
            "找你们经理",
            "找负责人",
            "找客服",
            "转客服",
            "跟人说",
            "和人说",
            "活人",
        ]),
        wrong: Keywords::new(&[
            "打错了",
            "打错电话",
            "找错人",
            "不是本人",
            "没有这个人",
            "没这个人",
            "不认识这个人",
            "你找谁",
            "我不是她",
            "我不是他",
        ]),
        repeat: Keywords::new(&[
            "听得到吗",
            "听得见吗",
            "能听到吗",
            "能听见吗",
            "喂喂",
            "刚才说",
            "刚说的",
            "再说一遍",
            "再说一次",
            "再讲一遍",
            "再讲一次",
            "重复一下",
            "重复一遍",
            "重说",
            "没听清",
            "没听见",
            "没听到",
            "听不清",
            "没听明白",
            "没听懂",
            "听不懂",
            "说慢点",
            "慢一点说",
            "走神",
            "刚才说什么",
            "刚才说啥",
            "你说什么",
            "你说啥",
            "您说什么",
            "再来一遍",
            "没太听清",
            "信号不好",
            "声音太小",
            "听不太清",
            "什么意思",
        ]),
        busy: Keywords::new(&[
            "不方便",
            "不太方便",
            "在开会",
            "开会呢",
            "正在开会",
            "要开会",
            "没空",
            "没时间",
            "很忙",
            "太忙",
            "忙着",
            "在忙",
            "正忙",
            "有点忙",
            "挺忙",
            "在开车",
            "开车呢",
            "晚点再打",
            "晚点打",
            "晚点再说",
            "待会再打",
            "待会打",
            "等会再打",
            "等会打",
            "过会再打",
            "回头再说",
            "回头再打",
            "改天再打",
            "改天再说",
            "下次再说",
            "稍后再打",
            "现在不行",
            "现在不方便",
            "手上有事",
            "在外面",
            "在路上",
            "在上课",
            "在吃饭",
            "不是很方便",
            "一会再打",
            "一会儿再打",
            "一会再说",
            "一会儿再说",
            "等会再说",
            "待会再说",
            "过会再说",
            "晚些再打",
            "换个时间",
        ]),
        callback_verbs: Keywords::new(&[
            "再打",
            "打过来",
            "打给我",
            "回电",
            "回拨",
            "再联系",
            "联系我",
            "再说吧",
            "再聊",
            "打来",
            "打我",
            "回个电话",
            "回电话",
            "给我打",
            "打个电话给我",
        ]),
        decline: Keywords::new(&[
            "跟我有什么关系",
            "关我什么事",
            "和我有什么关系",
            "不需要",
            "没兴趣",
            "不感兴趣",
            "不想听",
            "别说了",
            "不用说了",
            "不用讲了",
            "不听了",
            "我拒绝",
            "不用打",
            "挂了吧",
            "我挂了",
            "不想了解",
            "跟我没关系",
            "和我没关系",
            "不用通知",
            "不想参加",
            "不考虑",
            "不打算",
        ]),
        docs: Keywords::new(&[
            "发我",
            "发给我",
            "发一份",
            "发到",
            "发个",
            "发过来",
            "邮箱",
            "邮件",
            "书面",
            "资料发",
            "文档发",
            "电子版",
            "传给我",
            "寄给我",
            "email",
            "艾特",
            "@",
        ]),
        identity: Keywords::new(&[
            "机器人",
            "真人",
            "人工智能",
            "是不是ai",
            "你是ai",
            "是人吗",
            "录音吗",
            "自动语音",
        ]),
        question: Keywords::new(&[
            "怎么",
            "什么",
            "哪些",
            "哪个",
            "哪里",
            "哪儿",
            "哪天",
            "多久",
            "多长",
            "多少",
            "几点",
            "几个",
            "几天",
            "为什么",
            "为啥",
            "是不是",
            "会不会",
            "能不能",
            "可不可以",
            "有没有",
            "要不要",
            "是否",
            "如何",
            "想知道",
            "想问",
            "请问",
            "问一下",
            "问下",
            "咨询",
            "有个问题",
            "个问题",
            "谁来",
            "谁负责",
            "是谁",
            "谁啊",
            "谁呀",
            "咋",
            "啥时候",
            "干嘛",
            "吗",
            "么",
            "呢",
            "啥",
            "能否",
            "可否",
            "谁",
            "怎样",
            "哪",
            "几时",
        ]),
        not_question: Keywords::new(&[
            "没什么",
            "没有什么",
            "什么都",
            "不知道",
            "没啥",
            "没多少",
            "没问题",
            "怎么都行",
            "什么时候都行",
            "都可以",
            // The emphatic 呢 of a statement (一直用着呢, 在家等着呢), not a question.
            "着呢",
        ]),
        special: Keywords::new(&[
            "夜班",
            "晚班",
            "值夜",
            "通宵",
            "关键任务",
            "关键业务",
            "核心业务",
            "不能停",
            "不能断",
            "不能中断",
            "特殊要求",
            "特殊需求",
            "割接",
            "值守",
            "轮班",
            "倒班",
            "三班倒",
            "行动不便",
            "老人在家",
            "家里有老人",
            "听力不好",
            "需要保障",
            "要求",
            "希望你们",
            "最好",
            "麻烦你们",
            "得安排",
            "有人在",
        ]),
        goodbye: Keywords::new(&[
            "再见",
            "拜拜",
            "先这样",
            "就这样吧",
            "就这样",
            "挂了",
            "没别的事",
            "那先这样",
        ]),
        negative: Keywords::new(&[
            "没事了",
            "没事",
            "没有",
            "没了",
            "没什么",
            "不用了",
            "不用",
            "暂时没有",
            "都清楚",
            "没别的",
            "没其他",
            "没啥",
            "不是",
            "不对",
            "不行",
            "不可以",
            "不同意",
            "不要",
            "不了",
            "都挺清楚",
            "没意见",
            "没有意见",
            "没补充",
            "不需要了",
            "不太需要",
        ]),
        agree: Keywords::new(&[
            "嗯",
            "恩",
            "摁",
            "好",
            "行",
            "可以",
            "没问题",
            "收到",
            "明白",
            "清楚",
            "知道了",
            "了解",
            "您说",
            "你说",
            "请讲",
            "说吧",
            "讲吧",
            "对",
            "是的",
            "是我",
            "ok",
            "okay",
            "继续",
            "方便",
            "听着",
            "在听",
            "好嘞",
            "中",
            "成",
            "嗯嗯",
            "对的",
            "没错",
            "是",
            "说下",
            "讲讲",
            "简单说",
            "接着说",
            "往下说",
            "同意",
            "哦",
            "噢",
            "喔",
            "知道",
            "懂了",
            "谢谢",
        ]),
        off_topic: Keywords::new(&[
            "天气",
            "吃饭了吗",
            "吃了吗",
            "股票",
            "彩票",
            "足球",
            "篮球",
            "电影",
            "唱歌",
            "唱首歌",
            "讲个笑话",
            "笑话",
            "你多大",
            "你几岁",
            "结婚",
            "打游戏",
            "放假",
            "你家在哪",
            "你长得",
            "约会",
            "哈哈哈",
        ]),
    })
}

/// Classifies `text` (one callee utterance) at time `now`.
pub fn classify(text: &str, now: DateTime<FixedOffset>) -> Classified {
    let norm = normalize(text);
    let f = families();
    let ph = Phonetic::new(&norm);
    let email = extract_email(text);
    let callback =
        super::slots::callback_time(text, now).or_else(|| parse_callback_time(text, now));
    // "短信发到13957120088": a number to send texts to is a new phone number, not a
    // request for documents.
    let to_a_phone = super::slots::extract_phone(text).is_some_and(|p| p.len() >= 11)
        && !["邮箱", "邮件", "资料", "文档", "文件", "email"]
            .iter()
            .any(|w| norm.contains(w));
    let wants_docs = f.docs.any_in(&ph) && !to_a_phone || email.is_some();
    let raw_q = text.contains('？') || text.contains('?');
    let clauses: Vec<&str> = text
        .split(['，', ',', '。', '；', '！', '…', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    // "上午还是下午": 还是 between two choices asks; at a clause's start it is "still"
    // ("对，还是这个号").
    // Fillers before it ("嗯……还是寄过来吧") leave it at the clause's start.
    // So do a connective or the speaker before it ("不过还是续吧", "我还是自己去吧").
    let either_or = clauses.iter().any(|cl| {
        let mut cl =
            cl.trim_start_matches(['嗯', '啊', '哦', '呃', '额', '唉', '那', '…', '.', '。']);
        while let Some(rest) = [
            "不过", "但是", "可是", "但", "我看", "要不", "我们", "咱们", "我", "咱", "就",
            // "这回还是配瑞格列奈": again, as last time.
            "这回", "这次", "今年", "今天", "也",
        ]
        .iter()
        .find_map(|w| cl.strip_prefix(w))
        {
            cl = rest;
        }
        // "换了新电池还是提示": after a thing done (了), 还是 is "still".
        cl.find("还是").is_some_and(|i| {
            i > 0
                && !cl[..i].contains('了')
                && cl[i + "还是".len()..].chars().any(super::text::is_han)
        })
    });
    // A-not-A questions often end in a bare 不/没 (要打孔不, 来了没), also in a
    // clause before more words ("要自己掏钱不，我今年六十八了").
    let a_not_a = either_or
        || clauses.iter().any(|cl| {
            cl.chars().count() >= 4
                && (cl.ends_with('不') || cl.ends_with('没'))
                && !cl.ends_with("也不")
        })
        || norm.chars().count() >= 4
        && (norm.ends_with('不')
            || norm.ends_with('没')
            // "有啥活动没有": 有…没有.
            || norm
                .strip_suffix("没有")
                .is_some_and(|head| head.contains('有')))
        // "送上门收不收钱", "能不能…": A-not-A anywhere.
        || norm
            .chars()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| {
                // Verbs and adjectives callers ask with; not 在 (现在不在 is a statement).
                w[0] == w[2]
                    && (w[1] == '不' || w[1] == '没')
                    && "是要能会有行好对收用去来需够贵远多想肯愿知认记可给送换退开方做办管修装卖接交".contains(w[0])
            });
    // Question words by characters only: their sound-alikes are ordinary content
    // ("底下全是水" is not "是谁").
    // "师傅会先打电话吧": a guess put up for confirmation is a question, unless it
    // proposes a time ("明天上午十点吧").
    // "可以的，发吧" / "行，就这么办吧": a yes followed by a go-ahead is no guess.
    // The guess is the last clause ("是我，方便，你说吧" ends in a go-ahead).
    let last_clause = normalize(
        text.trim_end_matches(['。', '！', '!', ' '])
            .rsplit(['，', ',', '。', '；', ' '])
            .next()
            .unwrap_or(text),
    );
    let after_yes = ["可以的", "可以", "好的", "行", "好", "嗯"]
        .iter()
        .find_map(|y| last_clause.strip_prefix(y))
        .unwrap_or(&last_clause);
    let tag_q = norm.ends_with('吧')
        && ["会", "能", "应该", "可以", "是", "不要紧", "没事", "没问题"]
            .iter()
            .any(|m| after_yes.contains(m))
        && callback.is_none();
    // "我在菜市场呢" / "我正做饭呢" / "忙着呢": the durative 呢 after 在, 正 or 着
    // tells what the caller is doing; after 还是, 才 or 刚 it stresses a statement
    // ("我还是头一回上老年大学呢"), as after 还没 ("还没看完呢": not yet).
    let unquestioned: String = text
        .split_inclusive(['，', ',', '。', '；', ' '])
        .map(|cl| {
            let body = cl.trim_end_matches(['，', ',', '。', '；', ' ']);
            let durative = body.ends_with('呢')
                && [
                    "在",
                    "正",
                    "着",
                    "还是",
                    "才",
                    "刚",
                    "头一回",
                    "第一次",
                    "还没",
                    "还不",
                ]
                .iter()
                .any(|w| body.contains(w))
                && !["什么", "哪", "谁", "怎", "几", "多少", "吗"]
                    .iter()
                    .any(|w| body.contains(w));
            let cl = if durative {
                cl.replacen('呢', "", 1)
            } else {
                cl.to_string()
            };
            // "不怎么疼" is "not very sore": 怎么 after 不 asks nothing. Nor does 几
            // for "a few" ("住了几天院", "前几天", "十几年").
            cl.replace("不怎么", "不太")
                .replace("了几", "了好些")
                .replace("好几", "好些")
                .replace("这几天", "这些天")
                .replace("前几天", "前些天")
                .replace("过几天", "过些天")
                .replace("十几", "十多")
        })
        .collect();
    let norm_q = normalize(&unquestioned);
    let question_like = (raw_q || a_not_a || tag_q || f.question.any_literal_in(&norm_q))
        && !f.not_question.any_in(&ph)
        || (raw_q && !norm.is_empty());

    let negative_word = f.negative.first_in(&ph).map(str::to_string);
    let mut c = Classified {
        intent: Intent::Statement,
        text: text.trim().to_string(),
        email,
        callback,
        wants_docs,
        question_like,
        negative_word,
        upset: upset_in(f, &norm, &ph) || grievance(&norm),
    };
    c.intent = if norm.is_empty() {
        Intent::Silence
    } else if f.hostile.any_in(&ph) || asks_no_more_calls(&norm) {
        Intent::Hostile
    } else if asks_for_person_with(f, text, &ph) {
        Intent::Transfer
    } else if f.abusive.any_in(&ph) {
        Intent::Abusive
    } else if f.wrong.any_in(&ph) || someone_else_answers(&norm) {
        Intent::WrongPerson
    } else if f.hold.any_in(&ph)
        && !f.busy.any_in(&ph)
        && c.callback.is_none()
        && norm.chars().count() <= 12
    {
        Intent::Hold
    } else if f
        .repeat
        .all_in(&ph)
        // 喂喂 only as said: by sound it also matches 喂，卫生间….
        .any(|k| k != "喂喂" || norm.contains("喂喂"))
        && !super::slots::is_correction(&norm)
        // "吵得听不清，你晚上七点再打吧": a time to call back wins over the line.
        && !(c.callback.is_some() && f.callback_verbs.any_in(&ph))
    {
        Intent::Repeat
    } else if f.busy.all_in(&ph).any(|k| !busy_word_about_else(&norm, k))
        // "我要是在外面的修理厂保养，还给保修吗": a supposition, not "I am out".
        && !(c.question_like && ["要是", "如果", "假如", "万一"].iter().any(|w| norm.contains(w)))
        || (c.callback.is_some()
            && f.callback_verbs.any_in(&ph)
            && !c.question_like
            && !tells_own_call(&norm))
    {
        Intent::NotConvenient
    } else if f.decline.any_in(&ph) {
        Intent::Decline
    } else if wants_docs {
        Intent::DocsRequest
    } else if f.identity.any_in(&ph) && (c.question_like || norm.chars().count() <= 8) {
        // "希望晚上也有真人接" wishes; it does not ask who is speaking.
        Intent::AskIdentity
    } else if f.off_topic.any_in(&ph) {
        Intent::OffTopic
    } else if c.question_like {
        Intent::Question
    } else if f
        .special
        .all_in(&ph)
        // "没有人在里面" denies 有人在; it asks nothing special.
        .any(|k| {
            !norm
                .match_indices(k)
                .any(|(i, _)| norm[..i].ends_with(['没', '不', '别']))
        })
    {
        Intent::SpecialNeed
    } else if f.goodbye.any_in(&ph) {
        Intent::Goodbye
    } else if c.negative_word.is_some() {
        Intent::Negative
    } else if agrees(&f.agree, text, &norm) {
        Intent::Agree
    } else {
        Intent::Statement
    };
    c
}

/// "我今天打来是报修的": the caller tells why they rang; no call back is asked for.
fn tells_own_call(norm: &str) -> bool {
    ["打来", "打过来", "打电话来", "打电话过来"]
        .iter()
        .any(|v| {
            norm.match_indices(v).any(|(i, _)| {
                // The four characters before, nearest first: 我 as the one who
                // rang, not as in 给我打过来.
                let before: String = norm[..i].chars().rev().take(4).collect();
                let object = ["我给", "我跟", "我和", "我帮", "我找"]
                    .iter()
                    .any(|w| before.contains(w));
                before.contains('我') && !object || norm[i + v.len()..].starts_with('是')
            })
        })
}

/// Whether every place the busy word `k` is said, it is about something other
/// than the caller's time: "我腿脚不太方便" is about walking, "人都在外面" (to "有没有人
/// 被困？") about other people. A word heard only by its sound counts as said.
fn busy_word_about_else(norm: &str, k: &str) -> bool {
    const BODY: &[&str] = &[
        "腿",
        "脚",
        "身体",
        "行动",
        "走路",
        "腰",
        "眼睛",
        "耳朵",
        "上下楼",
        "年纪",
        "出门",
    ];
    const OTHERS: &[&str] = &["都", "他", "她", "它", "孩子", "老人", "家里人", "车"];
    let mut at = norm.match_indices(k).peekable();
    if at.peek().is_none() {
        return false;
    }
    at.all(|(i, _)| {
        let before = super::text::last_chars(&norm[..i], 4);
        match k {
            "不方便" | "不太方便" | "不是很方便" => {
                BODY.iter().any(|w| before.contains(w))
            }
            "在外面" | "在路上" => OTHERS.iter().any(|w| before.contains(w)),
            _ => false,
        }
    })
}

/// An acknowledgement: a short reply holding an agreeing word, or a longer one that
/// opens with it ("是我，…", "好的，…"). "是" in the middle of a sentence ("洗衣机是
/// 去年买的") is a copula, not a yes.
fn agrees(agree: &Keywords, text: &str, norm: &str) -> bool {
    // 中 ("OK" in northern speech) only as the whole reply: 挂中医科 is no yes.
    let norm_owned;
    let norm = if norm.chars().count() > 2 && norm.contains('中') {
        norm_owned = norm.replace('中', "");
        norm_owned.as_str()
    } else {
        norm
    };
    if norm.chars().count() <= 6 {
        return agree.any_in(&Phonetic::new(norm));
    }
    let first = normalize(
        text.split(PUNCT)
            .find(|c| !c.trim().is_empty())
            .unwrap_or(""),
    );
    let head: String = if first.chars().count() <= 4 {
        first
    } else {
        norm.chars().take(2).collect()
    };
    agree.any_in(&Phonetic::new(&head))
}

const PUNCT: [char; 10] = ['，', ',', '。', '.', '！', '!', '？', '?', '；', ' '];

/// Builds the keyword tables now, so the first turn of a call does not pay for it.
pub fn warm_up() {
    let _ = families();
}

/// True when the utterance asks for a person (used by drivers that run their own
/// classification, e.g. the console's take-over hint).
pub fn asks_for_person(text: &str) -> bool {
    asks_for_person_with(families(), text, &Phonetic::new(&normalize(text)))
}

/// Transfer keywords or a lone 人工, outside what the caller refuses: 不用转人工了
/// declines the offer of a person. `ph` is the whole text's reading, used as it is
/// when nothing was refused.
fn asks_for_person_with(f: &Families, text: &str, ph: &Phonetic) -> bool {
    let kept = without_refusals(text);
    let said = if kept == text {
        f.transfer.any_in(ph)
    } else {
        f.transfer.any_in(&Phonetic::new(&normalize(&kept)))
    };
    said || asks_for_rengong(&kept) || asks_person_to_call(&kept)
}

/// A grievance told without a single angry word: a failure that persists (到现在
/// 还没…), a promise not kept (说好…没来), a long wait (等了一个月才…), something lost
/// or broken by the service (弄丢了), a hardship it caused (都没法洗澡, 都冻病了), or
/// an ultimatum (这回还这样我可不干). A careful agent apologises before going on.
pub fn grievance(norm: &str) -> bool {
    use regex::Regex;
    static RE: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RE.get_or_init(|| {
        [
            // Still not done, up to now.
            r"(到现在|到今天|到这会|至今|直到现在|这么多天|这么久)[^，。！？]{0,4}(还|也|都)?(没|不见|不来)",
            // A promise not kept.
            r"(说好|约好|答应|承诺|你们说|不是说)[^。！？]{0,16}(还没|没来|没有来|没见|不见|没人|人影|没修|没到|没给|也没)",
            // A long wait before it happened.
            r"等了[^，。！？]{1,8}才",
            // Lost or broken by the service.
            r"(弄丢|搞丢|给丢了|弄坏|搞坏|给弄坏)",
            // A hardship it caused.
            r"都(没法|不能|冻|病|急)",
            r"(冻感冒|冻病|冻坏|冻得受不了)",
            // An ultimatum or an open reproach.
            r"(可不干|不答应|没个说法|给个说法|你们怎么回事|人影都没)",
            // Hard to get through; dragged out.
            r"(打|拨)了[^，。！？]{1,8}才(打通|接通|通)",
            r"拖了[^，。！？]{0,6}(天|月|周|礼拜|星期|年)",
            r"等了整整",
            // A mistake the service made, or a mess it left.
            r"(你们|上次|上回|又)[^。！？]{0,10}(配错|给错|发错|弄错|送错|装错|算错|扣错|多扣)",
            r"(一塌糊涂|拍拍屁股)",
            // An appointment that did not spare the wait; a service called useless.
            r"(约好|预约|说好)[^。！？]{0,12}结果(还是|又)",
            r"排了(半天|好久|一个多|两个多|一上午|一下午|一整天)",
            r"你们[^。！？]{0,8}有(什么|啥)用",
            r"排了[^，。！？]{0,5}(小时|钟头)的?队",
            r"还好意思",
            r"(坑钱|坑人|宰人|黑心)",
            // An open reproach, a loss the service caused, a suspicion of bad faith.
            r"(像话吗|像什么话|什么意思[！!]|害得我|害我)",
            r"(是不是|就是)?故意[^。！？]{0,6}(拖|坑|骗|收钱|不给|刁难|为难)",
            r"根本(不一样|不对|不是|没用|不管)",
            // Worn out by it.
            r"(快崩溃|要崩溃|崩溃了|心累|身心俱疲|折腾死|累死了)",
        ]
        .iter()
        .filter_map(|r| Regex::new(r).ok())
        .collect()
    });
    res.iter().any(|r| r.is_match(norm))
}

/// An explicit request to stop calling the caller, however it is worded: a
/// prohibition (别/不要/不用/甭/不许/不准) of a calling verb (打/来电/联系/拨), aimed at
/// the caller (给我/跟我/我) or at the future (以后/今后/往后/再/再也). "以后别给我打了",
/// "今后不用再给我打电话了", "往后甭联系我". "不用再打了，我明天就去" (no need to ring
/// about this again) and "别打给我老公" (someone else) are no such request.
pub fn asks_no_more_calls(norm: &str) -> bool {
    const NEG: &[&str] = &["别", "不要", "不用", "甭", "不许", "不准", "不必"];
    const VERB: &[&str] = &[
        "打电话",
        "打过来",
        "打来",
        "打了",
        "打",
        "来电",
        "联系",
        "拨",
        "发",
    ];
    let future = ["以后", "今后", "往后", "再也", "从今"]
        .iter()
        .any(|w| norm.contains(w));
    NEG.iter().any(|n| {
        norm.match_indices(n).any(|(i, _)| {
            let rest = &norm[i + n.len()..];
            // What may stand between the prohibition and the verb.
            let mut r = rest;
            let mut to_me = false;
            let mut again = false;
            for _ in 0..4 {
                if let Some(t) = ["再", "也"].iter().find_map(|w| r.strip_prefix(w)) {
                    again = true;
                    r = t;
                } else if let Some(t) = ["给我", "跟我", "和我", "往我这", "我"]
                    .iter()
                    .find_map(|w| r.strip_prefix(w))
                {
                    to_me = true;
                    r = t;
                } else {
                    break;
                }
            }
            let Some(v) = VERB.iter().find(|v| r.starts_with(*v)) else {
                return false;
            };
            let after = &r[v.len()..];
            // 打 alone is calling only at the clause's end, before the caller or
            // with 电话 close after it ("别给我打了", "别打我电话", "别给我打这种续保
            // 电话了"): 打包, 打折, 打扫 are other verbs.
            let clause_rest: String = after
                .chars()
                .take_while(|c| !"，,。；;！!？?".contains(*c))
                .take(8)
                .collect();
            if *v == "打"
                && !(after.is_empty()
                    || after.starts_with(['，', ',', '。', '；', '！', '!'])
                    || clause_rest.contains("电话")
                    || ["了", "啦", "吧", "哈", "呀", "啊", "扰", "我"]
                        .iter()
                        .any(|w| after.starts_with(w)))
            {
                return false;
            }
            // 发 is sending messages: "别给我发短信了", "短信电话都别发了".
            let before = &norm[..i];
            let mut named = before;
            while let Some(t) = ["也", "都", "就", "你们", "再"]
                .iter()
                .find_map(|w| named.strip_suffix(w))
            {
                named = t;
            }
            let contact_named = ["电话", "短信", "消息", "信息"]
                .iter()
                .any(|w| named.ends_with(w));
            if *v == "发"
                && !(contact_named
                    || ["短信", "消息", "信息"]
                        .iter()
                        .any(|w| clause_rest.contains(w)))
            {
                return false;
            }
            // "别打给我老公": the call is to go to someone else.
            if after.starts_with("给") && !after.starts_with("给我") {
                return false;
            }
            // 联系 must be about the caller: "联系我", "给我…联系".
            let contact_me = *v != "联系" || to_me || after.starts_with('我');
            // "电话也别打了", "短信电话都别发了": the contact named first, then forbidden.
            // A message alone ("短信不用发了") declines that message, not all contact.
            let named_ok = contact_named && (*v != "发" || to_me || again || before.contains('都'));
            contact_me && (future || named_ok || to_me && (again || *n == "别"))
        })
    }) || refuses_calls(norm)
}

/// "你们的电话我不想再接了", "把我号码拉黑吧": the caller refuses to receive calls or
/// asks to be blocked. A question ("是不是把我拉黑了？") asks for nothing.
fn refuses_calls(norm: &str) -> bool {
    if norm.contains('吗') || norm.contains('？') || norm.contains("是不是") {
        return false;
    }
    let blocked = [
        "拉黑吧",
        "拉黑了吧",
        "号码拉黑",
        "把我拉黑",
        "拉进黑名单",
        "加黑名单",
        "加入黑名单",
    ]
    .iter()
    .any(|w| norm.contains(w));
    let refuses = [
        "不想再接",
        "不会再接",
        "不愿意再接",
        "不想接你们",
        "再也不接",
    ]
    .iter()
    .any(|w| norm.contains(w))
        && norm.contains("电话");
    blocked || refuses
}

/// Whether the upset words of `norm` are said, not denied: "不疼了" is relief, "疼死了"
/// is not.
fn upset_in(f: &Families, norm: &str, ph: &Phonetic) -> bool {
    if f.abusive.any_in(ph) {
        return true;
    }
    f.upset.all_in(ph).any(|k| {
        let mut at = norm.match_indices(k).peekable();
        if at.peek().is_none() {
            // Matched by sound only: keep it.
            return true;
        }
        at.any(|(i, _)| !norm[..i].ends_with(['不', '没', '别']))
    })
}

/// A request that a named person or role (the doctor, an engineer, the manager)
/// ring or speak to the caller themself: "你让周医生直接给我回个电话", "有没有工程师能
/// 直接跟我通电话", "我想跟她本人说". A question about what a role usually does
/// ("师傅上门前会先打电话吗") asks for nothing.
fn asks_person_to_call(text: &str) -> bool {
    const ROLES: &[&str] = &[
        "医生",
        "大夫",
        "护士",
        "师傅",
        "工程师",
        "技术员",
        "经理",
        "老师",
        "专员",
        "本人",
        "负责的人",
        "懂行的",
    ];
    const TALK: &[&str] = &[
        "回个电话",
        "回电话",
        "回电",
        "打个电话",
        "打电话给我",
        "给我打电话",
        "通电话",
        "通个电话",
        "跟我说",
        "和我说",
        "跟我讲",
        "跟我聊",
        "接电话",
        "联系我",
        "本人说",
        "本人讲",
    ];
    const ASKING: &[&str] = &[
        "让",
        "叫",
        "请",
        "直接",
        "有没有",
        "找",
        "换",
        "想跟",
        "要跟",
        "想和",
        "要和",
    ];
    // "我想问问给它看病的王医生，你能给我转过去吗": a person named, and the call
    // put through to them.
    let put_through = [
        "转过去",
        "转给他",
        "转给她",
        "转接过去",
        "接过去",
        "帮我转",
        "给我转",
    ]
    .iter()
    .any(|w| text.contains(w));
    if put_through && ROLES.iter().any(|r| text.contains(r)) {
        return true;
    }
    text.split(['，', ',', '。', '；', '！', '？', '?'])
        .any(|cl| {
            let role = ROLES.iter().filter_map(|r| cl.find(r)).min();
            let talk = TALK.iter().filter_map(|t| cl.rfind(t)).max();
            match (role, talk) {
                (Some(r), Some(t)) if r <= t => {
                    ASKING.iter().any(|a| cl.contains(a))
                        && !["会不会", "会先", "会提前", "之前会", "前会"]
                            .iter()
                            .any(|w| cl.contains(w))
                }
                _ => false,
            }
        })
}

/// "我不是，我是她同事，她去开会了": someone else answers for the callee, so what
/// follows about the callee (busy, away) is not the caller's own answer.
fn someone_else_answers(norm: &str) -> bool {
    (norm.starts_with("我不是") || norm.starts_with("不是"))
        && ["我是她", "我是他"].iter().any(|k| norm.contains(k))
}

/// The relation of someone answering for the callee ("我是他儿子", "我是她爱人，有事跟
/// 我说", "丽娟是我女儿"), or `None`.
pub fn family_proxy(text: &str) -> Option<&'static str> {
    const RELATIONS: &[&str] = &[
        "儿子",
        "女儿",
        "儿媳",
        "女婿",
        "老伴",
        "爱人",
        "老婆",
        "老公",
        "妻子",
        "丈夫",
        "媳妇",
        "孙子",
        "孙女",
        "外孙",
        "侄子",
        "侄女",
        "家属",
        "家里人",
        "妈妈",
        "爸爸",
        "母亲",
        "父亲",
        "哥哥",
        "姐姐",
        "弟弟",
        "妹妹",
        "保姆",
        "闺女",
    ];
    let norm = normalize(text);
    [
        "我是他",
        "我是她",
        "我是它",
        "我是他的",
        "我是她的",
        "我是病人",
        "我是老人",
    ]
    .iter()
    .filter_map(|lead| norm.find(lead).map(|i| &norm[i + lead.len()..]))
    .find_map(|rest| {
        let rest = rest.trim_start_matches('的');
        RELATIONS.iter().find(|r| rest.starts_with(*r)).copied()
    })
    .or_else(|| {
        // "丽娟是我女儿，她不在家": the callee named, then the speaker's relation to her.
        let (before, rest) = norm.split_once("是我")?;
        let named = before.chars().count() >= 2 && before.chars().all(super::text::is_han);
        let rest = rest.trim_start_matches('的');
        // Not "这是我老公的车": the relation owns something there.
        RELATIONS
            .iter()
            .find(|r| rest.starts_with(*r) && !rest[r.len()..].starts_with('的'))
            .copied()
            .filter(|_| named && !before.contains('不') && !before.ends_with(['就', '都', '也']))
    })
}

/// The text with each refusal (不要, 不用, 别 … and the four characters after it)
/// cut out: 不用转人工了，谢谢 keeps only 了，谢谢, while 不用了，给我转人工 keeps its
/// request.
fn without_refusals(text: &str) -> String {
    const REFUSALS: &[&str] = &[
        "不需要",
        "不要",
        "不用",
        "不想",
        "别",
        "不找",
        "不转",
        "不接",
    ];
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'next: while i < chars.len() {
        for r in REFUSALS {
            let n = r.chars().count();
            if chars[i..].iter().take(n).copied().eq(r.chars()) {
                // The refused words end at the clause's end, or four characters on.
                let mut j = i + n;
                while j < chars.len() && j < i + n + 4 && !"，,。.！!？?；;、".contains(chars[j])
                {
                    j += 1;
                }
                i = j;
                continue 'next;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// 人工 on a service line means "a person" whatever verb comes with it: 我要个人工,
/// 给我接个人工吧, 那就人工, and the verb misheard (我要拘人工). A clause counts when
/// 人工 stands alone (ends the clause, or is followed by 客服/服务/坐席/台 or a
/// particle), not in a compound (人工费, 人工智能, 人工关节), and a request cue comes
/// before it (refusals are cut out before, see [`without_refusals`]).
fn asks_for_rengong(text: &str) -> bool {
    const AFTER: &[&str] = &[
        "客服", "服务", "坐席", "台", "吧", "啊", "呀", "吗", "了", "来", "接", "帮", "跟", "和",
        "处理", "谢谢",
    ];
    const CUES: &[&str] = &[
        "要", "想", "给我", "帮我", "转", "找", "接", "换", "叫", "让", "就",
    ];
    text.split(|c: char| "，,。.！!？?；;、\n ".contains(c))
        .any(|clause| {
            let Some(at) = clause.find("人工") else {
                return false;
            };
            let (before, after) = (&clause[..at], &clause[at + "人工".len()..]);
            let alone = after.is_empty() || AFTER.iter().any(|a| after.starts_with(a));
            let asked = CUES.iter().any(|c| before.contains(c));
            alone && asked
        })
}

/// True when the utterance carries little beyond an acknowledgement.
pub fn is_short(text: &str) -> bool {
    normalize(text).chars().count() <= 6
}

#[cfg(test)]
mod tests {
    #[test]
    fn dangers_and_not_dangers() {
        assert_eq!(
            danger("我爸刚才胸口疼得厉害，出了好多汗，怎么办"),
            Some(Danger::Medical)
        );
        assert_eq!(danger("厨房里一股煤气味"), Some(Danger::Gas));
        assert_eq!(danger("楼道里着火了"), Some(Danger::Fire));
        assert_eq!(danger("要是燃气泄漏了怎么办"), None);
        assert_eq!(danger("胸口不疼了，就是咳嗽"), None);
        assert_eq!(danger("轮胎有点漏气"), None);
        assert_eq!(danger("我想挂个口腔科"), None);
        assert_eq!(danger("我妈前几天晕倒过，想约个神经内科"), None);
        assert_eq!(danger("我爸晕倒过一次"), None);
    }

    use super::*;

    #[test]
    fn a_few_and_a_stressed_statement_ask_nothing() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        for t in [
            "我上个月在市一医院住了几天院，现在出院了",
            "我还是头一回上老年大学呢",
            "热水器用了十几年了",
        ] {
            assert!(!classify(t, now).question_like, "{t}");
        }
        for t in ["要住几天院", "还有别的呢", "几点开门"] {
            assert!(classify(t, now).question_like, "{t}");
        }
    }

    #[test]
    fn relatives_answering_for_the_callee() {
        assert_eq!(family_proxy("我是她老公，她在上班"), Some("老公"));
        assert_eq!(
            family_proxy("丽娟是我女儿，她不在家，你有什么事"),
            Some("女儿")
        );
        assert_eq!(family_proxy("不是，这是我老公的车，他现在不在"), None);
        assert_eq!(family_proxy("是我，你说吧"), None);
    }

    #[test]
    fn busy_words_about_someone_else_or_the_body() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").unwrap();
        assert_ne!(
            classify("送到家里吧，我腿脚不太方便", now).intent,
            Intent::NotConvenient
        );
        assert_ne!(
            classify("没有没有，人都在外面", now).intent,
            Intent::NotConvenient
        );
        assert_eq!(
            classify("我现在不太方便", now).intent,
            Intent::NotConvenient
        );
        assert_eq!(classify("我在外面呢", now).intent, Intent::NotConvenient);
    }

    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-25T10:20:00+08:00").unwrap()
    }

    #[test]
    fn priorities() {
        let i = |s: &str| classify(s, now()).intent;
        assert_eq!(i("嗯你说"), Intent::Agree);
        // "是" inside a sentence is a copula, not a yes; at its head it is a yes.
        assert_eq!(i("洗衣机是去年买的"), Intent::Statement);
        assert_eq!(i("我家路由器是自己买的"), Intent::Statement);
        assert_eq!(i("是我，那个洗衣机是前年买的"), Intent::Agree);
        // A correction cue is not a request to repeat.
        assert_ne!(i("刚才说错了，是一三五 一二三四 八八九九"), Intent::Repeat);
        assert_eq!(i("嗯，能先说下费用吗"), Intent::Question);
        // 还是 after a filler is "after all", not "or".
        assert_ne!(i("嗯……还是周六来吧"), Intent::Question);
        assert_ne!(i("哦…还是发短信吧，省事"), Intent::Question);
        assert_eq!(i("嗯……是周六还是周日"), Intent::Question);
        assert_ne!(i("不过我还是寄到单位吧，家里白天没人"), Intent::Question);
        assert_eq!(i("我们是今天去还是明天去"), Intent::Question);
        assert_ne!(i("门锁一直提示电量低换了新电池还是提示"), Intent::Question);
        assert_eq!(i("不好意思没听清能再说一遍吗"), Intent::Repeat);
        // What the caller is doing (正…呢, …着呢) asks nothing; the time and the
        // call-again verb make it a callback request.
        assert_eq!(i("我正洗澡呢，你晚上八点再打来"), Intent::NotConvenient);
        assert_ne!(
            i("我今天打来是报修的，密码按了没反应"),
            Intent::NotConvenient
        );
        assert_eq!(i("正吃饭呢，一会儿再说"), Intent::NotConvenient);
        assert_eq!(i("你们正规吗？"), Intent::Question);
        assert_eq!(i("喂喂，听得到吗"), Intent::Repeat);
        assert_ne!(i("喂，卫生间下水道堵了"), Intent::Repeat);
        assert_eq!(i("别再打了烦死了"), Intent::Hostile);
        assert_eq!(i("把我号码删掉"), Intent::Hostile);
        // A prohibition of calling, aimed at the caller or the future.
        assert_eq!(i("今后不用再给我打电话了，谢谢"), Intent::Hostile);
        assert_eq!(i("往后甭联系我了"), Intent::Hostile);
        assert_eq!(i("你们以后不要给我来电了"), Intent::Hostile);
        assert_eq!(i("这种电话别给我打了"), Intent::Hostile);
        assert_ne!(i("不用再打了，我明天就过去"), Intent::Hostile);
        assert_ne!(i("别打给我老公，他不管这事"), Intent::Hostile);
        assert_ne!(i("烦死了天天打"), Intent::Hostile);
        assert_ne!(i("别给我打包了，我自己拿"), Intent::Hostile);
        // The kind of call named after the verb, the calls named before the
        // prohibition, refusing to take calls, being blocked.
        assert_eq!(i("往后别给我打这类推销电话了"), Intent::Hostile);
        assert_eq!(i("你们的短信别发了，电话也别打了"), Intent::Hostile);
        assert_eq!(i("物业的电话我不想再接了"), Intent::Hostile);
        assert_eq!(i("麻烦把我这个号码拉黑吧"), Intent::Hostile);
        assert_ne!(i("你们是不是把我号码拉黑了？"), Intent::Hostile);
        assert_ne!(i("别给我打折了，原价就行"), Intent::Hostile);
        // Messages forbidden along with the calls, or alone.
        assert_eq!(i("短信电话都别给我发了"), Intent::Hostile);
        assert_eq!(i("以后别再给我发这种短信了"), Intent::Hostile);
        assert_ne!(i("别给我发快递了，我自己去拿"), Intent::Hostile);
        assert_ne!(i("地址你发我短信吧"), Intent::Hostile);
        assert_ne!(i("确认短信不用发了，我记下了"), Intent::Hostile);
        // Worry is a question, not a do-not-call request.
        assert_eq!(i("你们不会是骗子吧？"), Intent::Question);
        assert_eq!(
            i("我最近骚扰电话特别多，你们会把我信息给别人吗？"),
            Intent::Question
        );
        assert_ne!(i("底下全是水"), Intent::Question);
        assert_eq!(i("我要转人工"), Intent::Transfer);
        assert_eq!(
            i("我想问问上次给我装机的李师傅，你帮我转过去吧"),
            Intent::Transfer
        );
        assert_eq!(i("退费的事你帮我找管这个的人"), Intent::Transfer);
        // 人工 alone with any request cue, the verb misheard or missing.
        for asks in [
            "我要个人工",
            "给我接个人工吧",
            "那就人工吧",
            "我要拘人工。",
            "请帮我转到人工客服",
        ] {
            assert_eq!(i(asks), Intent::Transfer, "{asks}");
        }
        for not in [
            "人工费要多少钱",
            "我要问一下人工费",
            "我不要人工",
            "你们是人工吗",
            "我想了解人工智能",
            "不用转人工了，谢谢",
            "不需要人工",
            "请问人工的费用怎么算",
        ] {
            assert_ne!(i(not), Intent::Transfer, "{not}");
        }
        assert_eq!(i("不用了，给我转人工"), Intent::Transfer);
        assert_eq!(i("我不想跟机器说话，转人工"), Intent::Transfer);
        assert_eq!(i("能不能让你们前台的工作人员接一下电话"), Intent::Transfer);
        assert_eq!(i("给我转真人客服"), Intent::Transfer);
        assert_eq!(i("你是真人吗"), Intent::AskIdentity);
        assert!(classify("我都打了三次了，到底有没有人管！", now()).upset);
        assert_eq!(i("我在开会晚点再打"), Intent::NotConvenient);
        // 很满意 sounds like 很忙 once n/ng fold; it is praise, not a busy caller.
        assert_ne!(i("挺好的，很满意"), Intent::NotConvenient);
        assert_ne!(i("很满意，谢谢"), Intent::NotConvenient);
        assert_eq!(i("明天上午十点再打给我吧"), Intent::NotConvenient);
        assert_eq!(i("没有了都挺清楚的"), Intent::Negative);
        assert_eq!(i(""), Intent::Silence);
        // Sound-alike matching must not invent small talk or repeat requests.
        assert_eq!(
            i("文件共享和消息模块会分开维护还是同时中断"),
            Intent::Question
        );
        assert_eq!(i("技术团队值班方式"), Intent::Statement);
        assert_eq!(i("咱们能否归档所有维护过程日志"), Intent::Question);
    }

    #[test]
    fn not_very_is_no_question() {
        let q = |s: &str| classify(s, now()).question_like;
        assert!(!q("还有一点点酸，不怎么疼"));
        assert!(!q("最近不怎么咳嗽了"));
        assert!(!q("水压不怎么大，还能用"));
        assert!(q("怎么还不来人"));
        assert!(q("不怎么疼了，还要去复查吗"));
    }

    #[test]
    fn grievances_without_angry_words() {
        let upset = |s: &str| classify(s, now()).upset;
        assert!(upset("上周就说好派人来换表，到现在也没人来"));
        assert!(upset("快递等了半个月才到，盒子还是破的"));
        assert!(upset("你们上次把我的钥匙弄丢了"));
        assert!(upset("停电一整天，冰箱里的东西都没法放了"));
        assert!(upset("这次再拖我可不干"));
        assert!(upset("我打了三遍热线都没人接，现在才通，你们还想不想做了"));
        assert!(upset("上次那个小姑娘态度差得要命，对我们老年人爱理不理的"));
        assert!(upset("说好两天调到货，让我等了一个礼拜，你们太不靠谱了"));
        assert!(!upset("我想问一下，现在报名还来得及吗"));
        assert!(upset("这个热线我拨了一下午才接通"));
        assert!(upset("退款你们拖了我三个礼拜"));
        assert!(upset("上回你们给错了型号，我又跑了一趟"));
        assert!(upset("一说起这事我就来气"));
        assert!(grievance("上次约好了九点，结果还是等到十一点"));
        assert!(grievance("排了一个多小时才轮到我"));
        assert!(grievance("你们这个热线有啥用啊，一问三不知"));
        assert!(grievance("班车每次都晚来，害得我练车时间都少了，像话吗"));
        assert!(grievance("你们是不是故意拖着好多收钱！"));
        assert!(grievance("找房子找了一个多月了，人都快崩溃了"));
        assert!(!grievance("我是不是可以直接去训练场"));
        assert!(!grievance("这个滤芯有什么用"));
        assert!(grievance("上回让我排了三个小时的队，还好意思打来"));
        assert!(grievance("你们这就是坑钱的"));
        assert!(!grievance("检查结果还是偏高"));
        assert!(!upset("我不生气，你说吧"));
        assert!(!upset("电话号码我刚才说错了"));
        assert!(!upset("明天上午十点吧，家里有人"));
        assert!(!upset("没事，不着急，你们慢慢安排"));
    }

    #[test]
    fn relief_is_not_upset() {
        let upset = |s: &str| classify(s, now()).upset;
        assert!(!upset("已经不疼了就是有点不敢咬东西"));
        assert!(!upset("现在没疼了"));
        assert!(upset("疼死了，晚上睡不着"));
        assert!(upset("网速慢死了，交的钱跟打水漂一样"));
        assert!(upset("卡死了，根本用不了"));
    }

    #[test]
    fn a_yes_with_a_go_ahead_is_no_guess() {
        let i = |s: &str| classify(s, now()).intent;
        assert_eq!(i("可以的发吧"), Intent::Agree);
        assert_eq!(i("是我，方便，你说吧"), Intent::Agree);
        assert_eq!(i("行，就这样吧"), Intent::Goodbye);
        assert_eq!(i("师傅会先打电话吧"), Intent::Question);
        assert_eq!(i("这个应该不收钱吧"), Intent::Question);
    }

    #[test]
    fn asking_a_named_person_to_call() {
        let i = |s: &str| classify(s, now()).intent;
        assert_eq!(
            i("你让周医生直接给我回个电话吧，药的事我想跟她本人说"),
            Intent::Transfer
        );
        assert_eq!(i("有没有工程师能直接跟我通电话"), Intent::Transfer);
        assert_eq!(i("叫你们经理给我回电话"), Intent::Transfer);
        assert_eq!(i("请李老师本人跟我说一下"), Intent::Transfer);
        assert_ne!(i("师傅上门前会先打电话吗"), Intent::Transfer);
        assert_ne!(i("医生说让我多喝水"), Intent::Transfer);
    }

    #[test]
    fn relatives_answering() {
        assert_eq!(
            family_proxy("我是他儿子，我爸耳朵不太好，有什么事跟我说吧"),
            Some("儿子")
        );
        assert_eq!(family_proxy("我是她爱人，她在洗澡"), Some("爱人"));
        assert_eq!(family_proxy("我是他的女儿"), Some("女儿"));
        assert_eq!(family_proxy("是我，我是王建华"), None);
        assert_eq!(family_proxy("我是他们小区的"), None);
    }

    #[test]
    fn wishes_are_not_identity_questions() {
        let i = |s: &str| classify(s, now()).intent;
        assert_ne!(
            i("满意，就是希望晚上客服也有真人接，没别的了"),
            Intent::AskIdentity
        );
        assert_eq!(i("你是机器人吗"), Intent::AskIdentity);
        assert_eq!(i("你是真人"), Intent::AskIdentity);
    }

    #[test]
    fn busy_with_a_time_to_ring() {
        let i = |s: &str| classify(s, now()).intent;
        assert_eq!(
            i("我现在要出门了，你们下午三点给我回个电话吧"),
            Intent::NotConvenient
        );
        assert_eq!(i("晚上七点你们打我这个手机"), Intent::NotConvenient);
        assert_eq!(i("明天上午给我打过来吧"), Intent::NotConvenient);
    }
}
