// Chinese first, English on request; the choice is remembered in localStorage.

const STORAGE_KEY = "lightctl.lang";

const zh = {
  "nav.overview": "概览", "nav.map": "地图", "nav.devices": "设备", "nav.schedule": "计划",
  "nav.alarms": "告警", "nav.events": "活动场景",
  "live.idle": "未连接", "live.connecting": "连接中", "live.connected": "实时", "live.offline": "已断开",
  "logout": "退出",
  "login.title": "登录 城市照明控制台",
  "login.hint": "请输入分配给您的访问令牌。登录后浏览器只保存会话，不保存令牌。",
  "login.token": "访问令牌", "login.submit": "登录", "login.failed": "令牌无效",
  "login.throttled": "失败次数过多，请稍后再试",
  "role.viewer": "查看", "role.maintenance": "维修", "role.operator": "值班员", "role.office": "路灯所", "role.admin": "管理员",
  "na": "暂不可用", "na.long": "服务端未运行该功能所需的部分。", "loading": "加载中…", "none": "无",
  "error": "出错了", "retry": "重试",
  "kind.lamp": "单灯", "kind.group": "中华灯组", "kind.facade": "景观照明",
  "state.on": "亮灯", "state.off": "熄灯", "state.offline": "离线", "state.alarm": "告警",
  "state.maintenance": "维护", "state.unknown": "未知",
  "yes": "是", "no": "否", "all": "全部",
  // overview
  "ov.devices": "设备", "ov.total": "总数", "ov.online": "在线", "ov.lit": "亮灯", "ov.offline": "离线",
  "ov.alarm": "有告警", "ov.maintenance": "维护中", "ov.unknown": "未上报",
  "ov.kpi": "考核指标", "ov.kpi.lighting": "亮灯率", "ov.kpi.intact": "设施完好率", "ov.kpi.online": "在线率",
  "ov.kpi.target": "目标", "ov.alarms": "未处理告警", "ov.alarms.more": "查看全部告警",
  "ov.night": "今晚", "ov.sunset": "日落", "ov.sunrise": "日出", "ov.dusk": "民用昏影终", "ov.dawn": "民用晨光始",
  "ov.daytype": "日期类型", "ov.energy": "预计能耗", "ov.system": "系统", "ov.version": "版本",
  "ov.calendar": "节假日数据", "ov.demo": "演示模式",
  "ov.kpi.count": "{ok} / {total}", "ov.kpi.unknown": "{n} 个未上报", "ov.kpi.night": "今晚平均",
  "ov.calendar.local": "本地", "ov.calendar.missing": "缺少 {year} 年数据",
  "daytype.workday": "工作日", "daytype.weekend": "周末", "daytype.holiday": "法定节假日",
  "daytype.makeup_workday": "调休上班", "daytype.event": "活动日",
  // map
  "map.legend": "图例", "map.roads": "道路", "map.cabinet": "箱变/网关", "map.fit": "全图", "map.zoomin": "放大",
  "map.zoomout": "缩小", "map.hint": "滚轮缩放，拖动平移，点击设备查看详情",
  // device fields
  "f.id": "编号", "f.name": "名称", "f.kind": "类型", "f.road": "道路", "f.zone": "片区", "f.gateway": "网关/集中器",
  "f.online": "在线", "f.state": "状态", "f.level": "亮度", "f.k1": "K1 全夜", "f.k2": "K2 半夜", "f.scene": "场景",
  "f.power": "功率", "f.last_seen": "最后上报", "f.alarms": "告警", "f.maintenance": "维护", "f.output": "输出",
  "f.profile": "型号", "f.rated": "额定功率", "f.telemetry": "最新数据", "f.address": "通信地址", "f.location": "位置",
  "dev.filter.kind": "类型", "dev.filter.road": "道路", "dev.filter.zone": "片区", "dev.filter.status": "状态",
  "dev.prev": "上一页", "dev.next": "下一页", "dev.range": "第 {from}–{to} 条，共 {total} 条", "dev.empty": "没有符合条件的设备",
  "close": "关闭",
  // schedule
  "sch.date": "日期", "sch.target": "对象", "sch.tonight": "今晚", "sch.show": "查看", "sch.steps": "步骤",
  "sch.time": "时间", "sch.action": "动作", "sch.source": "来源", "sch.program": "方案", "sch.estimated": "估算",
  "sch.empty": "这一晚没有计划步骤", "sch.off": "关", "sch.on": "开",
  "sch.step": "步骤", "sch.devices": "{n} 台设备", "sch.default": "设备默认",
  // alarms
  "al.state": "状态", "al.severity": "级别", "al.type": "类型", "al.device": "设备", "al.first": "首次发生",
  "al.last": "最近发生", "al.assignee": "负责人", "al.note": "备注", "al.actions": "操作", "al.overdue": "超时",
  "al.ack": "确认", "al.resolve": "处理完成", "al.assign": "指派", "al.submit": "提交", "al.cancel": "取消",
  "al.note.required": "请填写处理说明", "al.empty": "没有告警", "al.role": "确认和处理告警需要维修及以上权限",
  "al.state.open": "未确认", "al.state.acked": "已确认", "al.state.resolved": "已解决",
  "al.due": "修复期限", "al.held": "检修中", "al.held.long": "设备处于检修状态：告警已记录，不通知",
  "sev.critical": "紧急", "sev.major": "重要", "sev.minor": "一般",
  // events
  "ev.title": "活动场景切换", "ev.intro": "为某个景观片区在指定时段切换场景；到期后自动恢复计划。",
  "ev.zone": "片区", "ev.name": "活动名称", "ev.scene": "场景", "ev.brightness": "亮度", "ev.start": "开始",
  "ev.until": "结束", "ev.reason": "原因", "ev.submit": "切换场景", "ev.done": "已切换（编号 {id}，至 {until}）",
  "ev.role": "切换场景需要值班员及以上权限", "ev.active": "生效中和待生效的覆盖", "ev.end": "提前结束",
  "ev.none": "没有生效中或待生效的覆盖", "ev.zones": "景观片区状态", "ev.ended": "已结束",
  "ev.duration": "时长", "ev.custom": "指定结束时间", "ev.start.now": "留空表示立即开始", "ev.by": "操作人",
  "ev.minutes": "{n} 分钟", "ev.hours": "{n} 小时",
  "ev.coming": "待生效", "ev.kind.manual": "手动", "ev.kind.event": "活动场景", "ev.kind.emergency": "应急",
  "scene.0": "关闭", "scene.1": "日常模式", "scene.2": "节假日模式", "scene.3": "重大活动模式", "scene.n": "场景 {n}",
  // alarm types
  "at.lamp_failure": "灯具故障", "at.control_gear_failure": "驱动器故障", "at.day_burner": "白天亮灯",
  "at.relay_failure": "继电器故障", "at.dim_mismatch": "调光异常", "at.cycling": "频繁启闭",
  "at.voltage_high": "电压过高", "at.voltage_low": "电压过低", "at.power_factor_low": "功率因数低",
  "at.over_temperature": "温度过高", "at.leakage": "漏电", "at.door_open": "箱门打开",
  "at.breaker_tripped": "断路器跳闸", "at.pole_tilt": "灯杆倾斜", "at.supply_loss": "失电",
  "at.cable_theft_suspected": "疑似电缆被盗", "at.comm_loss": "通信中断", "at.command_failed": "指令失败",
  "at.energy_anomaly": "能耗异常", "at.calendar_data_missing": "节假日数据缺失",
};

const en = {
  "nav.overview": "Overview", "nav.map": "Map", "nav.devices": "Devices", "nav.schedule": "Schedule",
  "nav.alarms": "Alarms", "nav.events": "Events",
  "live.idle": "Not connected", "live.connecting": "Connecting", "live.connected": "Live", "live.offline": "Disconnected",
  "logout": "Log out",
  "login.title": "Log in to the lighting console",
  "login.hint": "Enter the access token you were given. The browser keeps only a session, never the token.",
  "login.token": "Access token", "login.submit": "Log in", "login.failed": "Invalid token",
  "login.throttled": "Too many failed attempts; try again later",
  "role.viewer": "viewer", "role.maintenance": "maintenance", "role.operator": "operator", "role.office": "office", "role.admin": "admin",
  "na": "Not available", "na.long": "The server is not running the part this needs.", "loading": "Loading…", "none": "none",
  "error": "Something went wrong", "retry": "Retry",
  "kind.lamp": "Smart lamp", "kind.group": "Lamp group", "kind.facade": "Facade",
  "state.on": "On", "state.off": "Off", "state.offline": "Offline", "state.alarm": "Alarm",
  "state.maintenance": "Maintenance", "state.unknown": "Unknown",
  "yes": "yes", "no": "no", "all": "All",
  "ov.devices": "Devices", "ov.total": "Total", "ov.online": "Online", "ov.lit": "Lit", "ov.offline": "Offline",
  "ov.alarm": "With alarms", "ov.maintenance": "In maintenance", "ov.unknown": "Not reported",
  "ov.kpi": "KPIs", "ov.kpi.lighting": "Lighting rate", "ov.kpi.intact": "Facility intact rate", "ov.kpi.online": "Online rate",
  "ov.kpi.target": "target", "ov.alarms": "Open alarms", "ov.alarms.more": "All alarms",
  "ov.night": "Tonight", "ov.sunset": "Sunset", "ov.sunrise": "Sunrise", "ov.dusk": "Civil dusk", "ov.dawn": "Civil dawn",
  "ov.daytype": "Day type", "ov.energy": "Estimated energy", "ov.system": "System", "ov.version": "Version",
  "ov.calendar": "Holiday data", "ov.demo": "Demo mode",
  "ov.kpi.count": "{ok} of {total}", "ov.kpi.unknown": "{n} not reporting", "ov.kpi.night": "tonight's average",
  "ov.calendar.local": "local", "ov.calendar.missing": "no data for {year}",
  "daytype.workday": "Workday", "daytype.weekend": "Weekend", "daytype.holiday": "Public holiday",
  "daytype.makeup_workday": "Make-up workday", "daytype.event": "Event day",
  "map.legend": "Legend", "map.roads": "Roads", "map.cabinet": "Cabinet / gateway", "map.fit": "Fit", "map.zoomin": "Zoom in",
  "map.zoomout": "Zoom out", "map.hint": "Wheel to zoom, drag to pan, click a device for details",
  "f.id": "ID", "f.name": "Name", "f.kind": "Kind", "f.road": "Road", "f.zone": "Zone", "f.gateway": "Gateway",
  "f.online": "Online", "f.state": "State", "f.level": "Level", "f.k1": "K1 all-night", "f.k2": "K2 half-night", "f.scene": "Scene",
  "f.power": "Power", "f.last_seen": "Last report", "f.alarms": "Alarms", "f.maintenance": "Maintenance", "f.output": "Output",
  "f.profile": "Model", "f.rated": "Rated power", "f.telemetry": "Latest telemetry", "f.address": "Address", "f.location": "Location",
  "dev.filter.kind": "Kind", "dev.filter.road": "Road", "dev.filter.zone": "Zone", "dev.filter.status": "Status",
  "dev.prev": "Previous", "dev.next": "Next", "dev.range": "{from}–{to} of {total}", "dev.empty": "No devices match",
  "close": "Close",
  "sch.date": "Date", "sch.target": "Target", "sch.tonight": "Tonight", "sch.show": "Show", "sch.steps": "Steps",
  "sch.time": "Time", "sch.action": "Action", "sch.source": "Source", "sch.program": "Program", "sch.estimated": "estimated",
  "sch.empty": "No steps this night", "sch.off": "off", "sch.on": "on",
  "sch.step": "Step", "sch.devices": "{n} devices", "sch.default": "device default",
  "al.state": "State", "al.severity": "Severity", "al.type": "Type", "al.device": "Device", "al.first": "First seen",
  "al.last": "Last seen", "al.assignee": "Assignee", "al.note": "Note", "al.actions": "Actions", "al.overdue": "overdue",
  "al.ack": "Acknowledge", "al.resolve": "Resolve", "al.assign": "Assign", "al.submit": "Submit", "al.cancel": "Cancel",
  "al.note.required": "Please describe the repair", "al.empty": "No alarms", "al.role": "Acknowledging and resolving needs the maintenance role",
  "al.state.open": "open", "al.state.acked": "acknowledged", "al.state.resolved": "resolved",
  "al.due": "repair due", "al.held": "maintenance", "al.held.long": "The device is in maintenance: recorded, not notified",
  "sev.critical": "critical", "sev.major": "major", "sev.minor": "minor",
  "ev.title": "Event scenes", "ev.intro": "Switch a facade zone's scene for a time window; the plan resumes by itself afterwards.",
  "ev.zone": "Zone", "ev.name": "Event", "ev.scene": "Scene", "ev.brightness": "Brightness", "ev.start": "Start",
  "ev.until": "Until", "ev.reason": "Reason", "ev.submit": "Switch scene", "ev.done": "Switched (id {id}, until {until})",
  "ev.role": "Switching scenes needs the operator role", "ev.active": "Overrides in force and to come", "ev.end": "End now",
  "ev.none": "No overrides in force or to come", "ev.zones": "Facade zones", "ev.ended": "Ended",
  "ev.duration": "Duration", "ev.custom": "until a time", "ev.start.now": "empty: starts now", "ev.by": "By",
  "ev.minutes": "{n} min", "ev.hours": "{n} h",
  "ev.coming": "upcoming", "ev.kind.manual": "manual", "ev.kind.event": "event scene", "ev.kind.emergency": "emergency",
  "scene.0": "Off", "scene.1": "Weekday", "scene.2": "Holiday", "scene.3": "Major event", "scene.n": "Scene {n}",
  "at.lamp_failure": "Lamp failure", "at.control_gear_failure": "Control gear failure", "at.day_burner": "Day burner",
  "at.relay_failure": "Relay failure", "at.dim_mismatch": "Dimming mismatch", "at.cycling": "Cycling",
  "at.voltage_high": "Voltage high", "at.voltage_low": "Voltage low", "at.power_factor_low": "Low power factor",
  "at.over_temperature": "Over temperature", "at.leakage": "Leakage", "at.door_open": "Door open",
  "at.breaker_tripped": "Breaker tripped", "at.pole_tilt": "Pole tilt", "at.supply_loss": "Supply loss",
  "at.cable_theft_suspected": "Cable theft suspected", "at.comm_loss": "Communication lost", "at.command_failed": "Command failed",
  "at.energy_anomaly": "Energy anomaly", "at.calendar_data_missing": "Holiday data missing",
};

const tables = { zh, en };
let lang = readStored();

function readStored() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    return stored === "en" ? "en" : "zh";
  } catch {
    return "zh";
  }
}

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  applyStatic();
}

// t("dev.range", {from: 1}) -> text; an unknown key falls back to English, then to the key itself.
export function t(key, vars) {
  let text = tables[lang][key] ?? en[key] ?? key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function has(key) {
  return key in tables[lang];
}

export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const toggle = document.getElementById("lang-toggle");
  if (toggle) toggle.textContent = lang === "zh" ? "EN" : "中文";
}
