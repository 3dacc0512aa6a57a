// Chinese and English labels; the choice is kept in localStorage.
const LABELS = {
  zh: {
    "app.title": "网格化治理指挥中心", "app.subtitle": "Grid Governance Command Centre",
    "lang.other": "English",
    "signin.token": "访问令牌 (Bearer JWT)", "signin.placeholder": "粘贴身份提供方签发的令牌",
    "signin.submit": "登录", "signin.out": "退出", "signin.demo": "演示身份（仅内嵌默认部署）",
    "signin.demoHint": "演示令牌由本机开发密钥签发，生产环境使用身份提供方的令牌。",
    "signin.invalid": "令牌无效或已过期", "signin.failed": "登录失败",
    "filter.region": "区域", "filter.all": "全部辖区",
    "live.on": "实时", "live.off": "离线", "live.connecting": "连接中",
    "kpi.grids": "网格", "kpi.checkpoints": "检测点", "kpi.openHazards": "未闭环隐患",
    "kpi.overcrowded": "超员房屋", "kpi.understaffed": "协管员不足网格",
    "status.green": "正常", "status.yellow": "漏检", "status.red": "隐患", "status.none": "无检测点",
    "legend.title": "图例", "legend.checkpoint": "检测点", "legend.house": "出租屋",
    "legend.overcrowded": "超员房屋",
    "detail.title": "详情", "detail.close": "关闭", "detail.empty": "点击地图上的网格、检测点或房屋查看详情。",
    "detail.grid": "网格", "detail.checkpoint": "检测点", "detail.house": "出租屋",
    "detail.members": "网格员", "detail.venues": "场所", "detail.hazards": "未闭环隐患",
    "detail.inspections": "最近检查", "detail.none": "无", "detail.class": "网格类别",
    "detail.households": "户数", "detail.residents": "人口", "detail.venue": "场所",
    "detail.due": "下次应检", "detail.lastInspected": "上次检查", "detail.deadline": "整改期限",
    "detail.state": "状态", "detail.inspector": "检查人", "detail.passed": "合格",
    "detail.failed": "不合格", "detail.onTime": "按期", "detail.late": "逾期", "detail.occupants": "居住人数",
    "detail.area": "面积", "detail.overcrowdedUnits": "超员单元", "detail.address": "地址",
    "detail.code": "编码", "detail.loading": "加载中…", "detail.photos": "照片",
    "class.enhanced": "加强型", "class.key": "重点型", "class.regular": "常规型",
    "role.leader": "网格长", "role.street_cadre": "街道干部", "role.committee_member": "居委会成员",
    "role.police_officer": "社区民警", "role.coordinator": "协管员",
    "severity.general": "一般", "severity.major": "重大",
    "hazard.open": "待派发", "hazard.dispatched": "已派发", "hazard.acknowledged": "已签收",
    "hazard.rectification_reported": "已报整改", "hazard.overdue": "逾期", "hazard.closed": "已闭环",
    "feed.title": "实时动态", "feed.empty": "等待新事件…",
    "event.hazard.reported": "新隐患", "event.hazard.state_changed": "隐患状态",
    "event.checkpoint.status_changed": "检测点变色", "event.checkpoint.missed": "漏检",
    "event.inspection.recorded": "检查记录", "event.dispatch.state_changed": "派单状态",
    "event.house.overcrowded": "房屋超员", "event.house.overcrowding_cleared": "超员解除",
    "event.residence.registered": "居住登记", "event.residence.ended": "居住注销",
    "dispatch.pending": "待送达", "dispatch.delivered": "已送达", "dispatch.acknowledged": "已签收",
    "dispatch.feedback_received": "已反馈", "dispatch.closed": "已办结", "dispatch.escalated": "已升级",
    "dispatch.failed": "送达失败", "dispatch.forwarded": "已转办",
    "chart.hazards": "未闭环隐患：场所类型 × 严重程度", "chart.missed": "漏检率（按网格）",
    "chart.closure": "按期整改率与返工率（按社区）", "chart.inspectors": "督导员量化考评排名",
    "chart.departments": "部门签收与反馈时效（对照 SLA）", "chart.staffing": "流动人口与协管员配置（1:500）",
    "series.general": "一般", "series.major": "重大", "series.missedRate": "漏检率",
    "series.onTimeClosure": "按期整改率", "series.reported": "上报隐患", "series.rework": "返工率", "series.onTime": "按期",
    "series.late": "逾期", "series.missed": "漏检", "series.ackSla": "按时签收率",
    "series.feedbackSla": "按时反馈率", "series.residents": "流动人口", "series.coordinators": "现有协管员",
    "series.required": "应配协管员", "series.medianAck": "签收中位时长", "series.medianFeedback": "反馈中位时长",
    "chart.noData": "暂无数据", "foot.period": "统计周期：近 30 天", "scope.label": "数据范围",
    "unit.hours": "小时", "unit.minutes": "分钟",
  },
  en: {
    "app.title": "Grid Governance Command Centre", "app.subtitle": "网格化治理指挥中心",
    "lang.other": "中文",
    "signin.token": "Access token (bearer JWT)", "signin.placeholder": "Paste a token from your identity provider",
    "signin.submit": "Sign in", "signin.out": "Sign out", "signin.demo": "Demo identities (embedded default only)",
    "signin.demoHint": "Demo tokens are signed with this machine's development key; production uses the identity provider's tokens.",
    "signin.invalid": "The token is invalid or has expired", "signin.failed": "Sign-in failed",
    "filter.region": "Region", "filter.all": "Whole jurisdiction",
    "live.on": "Live", "live.off": "Offline", "live.connecting": "Connecting",
    "kpi.grids": "Grids", "kpi.checkpoints": "Checkpoints", "kpi.openHazards": "Open hazards",
    "kpi.overcrowded": "Overcrowded houses", "kpi.understaffed": "Understaffed grids",
    "status.green": "Normal", "status.yellow": "Missed", "status.red": "Hazard", "status.none": "No checkpoints",
    "legend.title": "Legend", "legend.checkpoint": "Checkpoint", "legend.house": "Rental house",
    "legend.overcrowded": "Overcrowded house",
    "detail.title": "Details", "detail.close": "Close", "detail.empty": "Click a grid, checkpoint or house on the map.",
    "detail.grid": "Grid", "detail.checkpoint": "Checkpoint", "detail.house": "Rental house",
    "detail.members": "Grid members", "detail.venues": "Venues", "detail.hazards": "Open hazards",
    "detail.inspections": "Last inspections", "detail.none": "None", "detail.class": "Grid class",
    "detail.households": "Households", "detail.residents": "Residents", "detail.venue": "Venue",
    "detail.due": "Next due", "detail.lastInspected": "Last inspected", "detail.deadline": "Deadline",
    "detail.state": "State", "detail.inspector": "Inspector", "detail.passed": "Passed",
    "detail.failed": "Failed", "detail.onTime": "on time", "detail.late": "late", "detail.occupants": "Occupants",
    "detail.area": "Floor area", "detail.overcrowdedUnits": "Overcrowded units", "detail.address": "Address",
    "detail.code": "Code", "detail.loading": "Loading…", "detail.photos": "Photos",
    "class.enhanced": "Enhanced", "class.key": "Key", "class.regular": "Regular",
    "role.leader": "Grid leader", "role.street_cadre": "Street cadre", "role.committee_member": "Committee member",
    "role.police_officer": "Community police", "role.coordinator": "Coordinator",
    "severity.general": "General", "severity.major": "Major",
    "hazard.open": "Open", "hazard.dispatched": "Dispatched", "hazard.acknowledged": "Acknowledged",
    "hazard.rectification_reported": "Fix reported", "hazard.overdue": "Overdue", "hazard.closed": "Closed",
    "feed.title": "Live events", "feed.empty": "Waiting for events…",
    "event.hazard.reported": "New hazard", "event.hazard.state_changed": "Hazard state",
    "event.checkpoint.status_changed": "Checkpoint colour", "event.checkpoint.missed": "Missed inspection",
    "event.inspection.recorded": "Inspection", "event.dispatch.state_changed": "Dispatch",
    "event.house.overcrowded": "House overcrowded", "event.house.overcrowding_cleared": "Overcrowding cleared",
    "event.residence.registered": "Registered", "event.residence.ended": "Departed",
    "dispatch.pending": "pending", "dispatch.delivered": "delivered", "dispatch.acknowledged": "acknowledged",
    "dispatch.feedback_received": "fed back", "dispatch.closed": "closed", "dispatch.escalated": "escalated",
    "dispatch.failed": "failed", "dispatch.forwarded": "forwarded",
    "chart.hazards": "Open hazards by venue type and severity", "chart.missed": "Missed-inspection rate by grid",
    "chart.closure": "On-time closure and rework by community", "chart.inspectors": "Inspector ranking (quantified evaluation)",
    "chart.departments": "Department acknowledgement and feedback vs SLA", "chart.staffing": "Floating residents vs coordinators (1:500)",
    "series.general": "General", "series.major": "Major", "series.missedRate": "Missed rate",
    "series.onTimeClosure": "On-time closure", "series.reported": "Hazards reported", "series.rework": "Rework", "series.onTime": "On time",
    "series.late": "Late", "series.missed": "Missed", "series.ackSla": "Acknowledged within SLA",
    "series.feedbackSla": "Fed back within SLA", "series.residents": "Floating residents", "series.coordinators": "Coordinators",
    "series.required": "Required", "series.medianAck": "Median time to acknowledge", "series.medianFeedback": "Median time to feed back",
    "chart.noData": "No data yet", "foot.period": "Period: last 30 days", "scope.label": "Scope",
    "unit.hours": "h", "unit.minutes": "min",
  },
};

let lang = localStorage.getItem("gridgov.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
const listeners = [];

export function currentLang() { return lang; }

export function t(key, fallback) {
  return LABELS[lang][key] ?? fallback ?? key;
}

export function applyLabels(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = `${t("app.title")} · gridgov`;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("gridgov.lang", lang);
  applyLabels();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.push(fn); }
