/* MAMe deck: interactive 3-D figures (plotly.js, embedded once in the deck before this script).
 *
 * Each <div class="figure-3d" data-figure="ID"> is drawn from the plotly JSON in
 * <script type="application/json" id="ID" src="..."> when its slide is first shown: the JSON is the
 * script's text, or the data: URI that pandoc's --embed-resources makes of its src (nothing is fetched).
 * With ?static-figures in the address (what the PDF printer opens), without plotly or without WebGL, the
 * class "static-figures" on <html> shows each figure's static PNG instead (report/styles.css).
 */
(function () {
  'use strict';
  var root = document.documentElement;

  function hasWebGL() {
    try {
      var canvas = document.createElement('canvas');
      return !!(canvas.getContext('webgl2') || canvas.getContext('webgl'));
    } catch (e) {
      return false;
    }
  }

  if (new URLSearchParams(window.location.search).has('static-figures') || !window.Plotly || !hasWebGL()) {
    root.classList.add('static-figures');
    return;
  }

  function figureSpec(id) {
    var holder = document.getElementById(id);
    if (!holder) throw new Error('3-D figure data #' + id + ' is missing');
    var text = holder.textContent.trim();
    if (!text) {
      var src = holder.getAttribute('src') || '', comma = src.indexOf(',');
      if (src.slice(0, 5) !== 'data:' || comma < 0) throw new Error('3-D figure data #' + id + ' is not embedded');
      var payload = src.slice(comma + 1);
      if (/;base64$/.test(src.slice(0, comma))) {
        var binary = atob(payload), bytes = new Uint8Array(binary.length);
        for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
        text = new TextDecoder('utf-8').decode(bytes);
      } else {
        text = decodeURIComponent(payload);
      }
    }
    return JSON.parse(text);
  }

  // Double-clicking a legend entry shows that class alone (again: every class). plotly would do it only
  // among the entries of the same legend, and the classes are listed in two legends (two columns).
  function showAlone(div, index) {
    var shown = function (trace) { return trace.visible === undefined || trace.visible === true; };
    var alone = div.data.every(function (trace, i) { return shown(trace) === (i === index); });
    var visible = div.data.map(function (trace, i) { return alone || i === index ? true : 'legendonly'; });
    window.Plotly.restyle(div, {visible: visible});
    return false;  // no default action
  }

  function draw(slide) {
    if (!slide) return;
    slide.querySelectorAll('.figure-3d[data-figure]').forEach(function (div) {
      if (div.getAttribute('data-drawn')) return;
      div.setAttribute('data-drawn', 'pending');
      var spec = figureSpec(div.getAttribute('data-figure'));
      window.Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true})
        .then(function () {
          div.on('plotly_legenddoubleclick', function (event) { return showAlone(div, event.curveNumber); });
          div.setAttribute('data-drawn', 'yes');
        });
    });
  }

  function start() {
    window.Reveal.on('slidechanged', function (event) { draw(event.currentSlide); });
    draw(window.Reveal.getCurrentSlide());
  }

  document.addEventListener('DOMContentLoaded', function () {
    if (!window.Reveal) return;
    if (window.Reveal.isReady()) start(); else window.Reveal.on('ready', start);
  });
})();
