// Marks each formula box that scrolls sideways with the edges where the formula
// continues (dgm-more-left, dgm-more-right); _static/derivations.css fades those
// edges, the sign a phone gives no scrollbar for. Jupyter Book loads every file
// in _static on every page; on a page without MathJax this does nothing.
(() => {
  const BOXES = 'mjx-container[jax="CHTML"][display="true"], span.math';

  const mark = (box) => {
    const hidden = box.scrollWidth - box.clientWidth;
    box.classList.toggle("dgm-more-left", hidden > 1 && box.scrollLeft > 1);
    box.classList.toggle("dgm-more-right", hidden > 1 && box.scrollLeft < hidden - 1);
  };

  const start = () => {
    // A box changes size when the window does, and when a closed dropdown around it opens.
    const resized = new ResizeObserver((entries) => entries.forEach((entry) => mark(entry.target)));
    document.querySelectorAll(BOXES).forEach((box) => {
      mark(box);
      resized.observe(box);
    });
  };

  document.addEventListener(
    "scroll",
    (event) => event.target instanceof Element && event.target.matches(BOXES) && mark(event.target),
    true, // scroll events do not bubble; catch them on the way down
  );
  window.addEventListener("load", () => {
    const typeset = window.MathJax && MathJax.startup && MathJax.startup.promise;
    if (typeset) typeset.then(() => document.fonts.ready).then(start);
  });
})();
