// Typeset the math that pymdownx.arithmatex marked (class "arithmatex"), with the bundled KaTeX.
function typesetMath() {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(typesetMath); // Material's page-change stream (also on first load)
} else {
  document.addEventListener("DOMContentLoaded", typesetMath);
}
