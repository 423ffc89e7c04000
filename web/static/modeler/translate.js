// Chinese words for bpmn-js's own palette, context pad, replace menu and stock properties panel
// (bpmn-js asks its `translate` service for every label). English pages keep the originals.
(function () {
  "use strict";

  var ZH = {
    // palette and tools
    "Activate hand tool": "抓手工具", "Activate lasso tool": "套索工具",
    "Activate create/remove space tool": "插入/删除空间", "Activate global connect tool": "连线工具",
    "Create start event": "开始事件", "Create intermediate/boundary event": "中间/边界事件",
    "Create end event": "结束事件", "Create gateway": "网关", "Create task": "任务",
    "Create data object reference": "数据对象", "Create data store reference": "数据存储",
    "Create expanded sub-process": "展开的子流程", "Create pool/participant": "池/参与者",
    "Create group": "分组", "Search in diagram": "在图中搜索", "Search": "搜索",
    // context pad
    "Append end event": "追加结束事件", "Append gateway": "追加网关", "Append task": "追加任务",
    "Append intermediate/boundary event": "追加中间事件", "Append receive task": "追加接收任务",
    "Append message intermediate catch event": "追加消息捕获事件",
    "Append timer intermediate catch event": "追加定时事件",
    "Append signal intermediate catch event": "追加信号捕获事件",
    "Append conditional intermediate catch event": "追加条件捕获事件",
    "Append compensation activity": "追加补偿活动", "Append text annotation": "追加文本注释",
    "Add text annotation": "添加文本注释", "Change element": "更改类型", "Delete": "删除",
    "Connect to other element": "连接到其他元素", "Connect using association": "用关联连接",
    "Connect using sequence/message flow or association": "用顺序流/消息流或关联连接",
    "Connect using data input association": "用数据输入关联连接",
    "Divide into two lanes": "分成两个泳道", "Divide into three lanes": "分成三个泳道",
    "Add lane above": "在上方添加泳道", "Add lane below": "在下方添加泳道",
    // replace menu
    "Task": "任务", "User task": "用户任务", "Service task": "服务任务", "Script task": "脚本任务",
    "Send task": "发送任务", "Receive task": "接收任务", "Manual task": "手工任务",
    "Business rule task": "业务规则任务", "Call activity": "调用活动",
    "Sub-process (collapsed)": "子流程（折叠）", "Sub-process (expanded)": "子流程（展开）",
    "Exclusive gateway": "排他网关", "Parallel gateway": "并行网关", "Inclusive gateway": "包容网关",
    "Event-based gateway": "事件网关", "Complex gateway": "复杂网关",
    "Start event": "开始事件", "End event": "结束事件", "Intermediate throw event": "中间抛出事件",
    "Message start event": "消息开始事件", "Timer start event": "定时开始事件",
    "Signal start event": "信号开始事件", "Conditional start event": "条件开始事件",
    "Message intermediate catch event": "消息捕获事件", "Message intermediate throw event": "消息抛出事件",
    "Timer intermediate catch event": "定时捕获事件", "Signal intermediate catch event": "信号捕获事件",
    "Message end event": "消息结束事件", "Terminate end event": "终止结束事件",
    "Error end event": "错误结束事件", "Escalation end event": "升级结束事件",
    "Message boundary event": "消息边界事件", "Timer boundary event": "定时边界事件",
    "Timer boundary event (non-interrupting)": "定时边界事件（不中断）",
    "Message boundary event (non-interrupting)": "消息边界事件（不中断）",
    "Error boundary event": "错误边界事件", "Loop": "循环", "Parallel multi-instance": "并行多实例",
    "Sequential multi-instance": "串行多实例", "Default flow": "默认流", "Sequence flow": "顺序流",
    "Conditional flow": "条件流",
    // stock properties panel
    "General": "常规", "Name": "名称", "ID": "标识", "Documentation": "文档",
    "Element documentation": "元素文档", "Process documentation": "流程文档",
    "Executable": "可执行", "Version tag": "版本标签", "Process ID": "流程标识",
    "Process name": "流程名称", "Participant": "参与者", "Timer": "定时器", "Type": "类型",
    "Value": "值", "Date": "日期", "Duration": "时长", "Cycle": "循环", "Message": "消息",
    "Global message reference": "全局消息", "Signal": "信号", "Global signal reference": "全局信号",
    "Error": "错误", "Escalation": "升级", "Link": "链接", "Condition": "条件",
    "Condition expression": "条件表达式", "Expression": "表达式", "Multi-instance": "多实例",
    "Compensation": "补偿", "Inputs": "输入", "Outputs": "输出", "Script": "脚本", "Format": "格式",
    "Create new ...": "新建……", "<none>": "<无>", "<empty>": "<空>", "Create": "新建",
    "Loop cardinality": "循环次数", "Completion condition": "完成条件", "Collection": "集合",
    "Element variable": "元素变量", "Wait for completion": "等待完成", "Activity reference": "活动引用",
    "Data object reference": "数据对象引用", "Code": "代码"
  };

  function translator(locale) {
    var words = (locale || "").indexOf("en") === 0 ? {} : ZH;
    return function translate(template, replacements) {
      var text = words[template] || template;
      return text.replace(/{([^}]+)}/g, function (all, key) {
        return replacements && key in replacements ? replacements[key] : all;
      });
    };
  }

  // A bpmn-js module replacing the translate service.
  window.KefuTranslate = function (locale) {
    return { translate: ["value", translator(locale)] };
  };
})();
