// Loaded on the pages with embedded widgets, after require.js and before the
// widget manager's embed-amd.js (nb_ipywidgets_js in _config.yml).

// 1. The embed script names its modules "@jupyter-widgets/...", and RequireJS
//    resolves those against the page's folder; webpack then looks there for the
//    Font Awesome files the widgets use. Point that name at the vendored copy.
require.config({
  paths: {
    "@jupyter-widgets/html-manager/dist": document.documentElement.dataset.content_root + "_static/jupyter-widgets/dist",
  },
});

// 2. The widgets typeset their labels with MathJax 2's MathJax.Hub.Queue; the
//    site runs MathJax 3, which has no Hub ("Cannot read properties of
//    undefined (reading 'Queue')"). MathJax (deferred) has run by DOMContentLoaded,
//    and the widgets render after it.
document.addEventListener("DOMContentLoaded", () => {
  const mathjax = window.MathJax;
  if (!mathjax || !mathjax.startup || mathjax.Hub) return;
  mathjax.Hub = {
    Queue: (command) => {
      const element = command[2];
      mathjax.startup.promise = mathjax.startup.promise.then(() => mathjax.typesetPromise([element]));
    },
  };
});
