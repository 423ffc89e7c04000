// The complaint statistics chart (web/templates/reports.html): counts as bars, rates as lines.
// The data comes from the page's <script type="application/json" id="report-data"> block.
(function () {
  "use strict";
  var holder = document.getElementById("report-chart");
  var source = document.getElementById("report-data");
  if (!holder || !source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var series = data.bars.map(function (bar) {
    return { name: bar.name, type: "bar", data: bar.data };
  }).concat(data.lines.map(function (line) {
    return { name: line.name, type: "line", yAxisIndex: 1, data: line.data, connectNulls: true };
  }));
  var chart = echarts.init(holder);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 48, right: 56, top: 48, bottom: 64 },
    xAxis: { type: "category", data: data.labels, axisLabel: { interval: 0, rotate: data.labels.length > 8 ? 45 : 0 } },
    yAxis: [{ type: "value", name: "件", minInterval: 1 },
            { type: "value", name: "%", min: 0, max: 100 }],
    series: series
  });
  window.addEventListener("resize", function () { chart.resize(); });
}());
