// Typeset the math with the bundled KaTeX: the formulas pymdownx.arithmatex marked (class
// "arithmatex", written as \( \) and \[ \]), and the headings with math in the navigation and
// the table of contents, which hold the formula as plain text.
var inline = [{ left: "\\(", right: "\\)", display: false }];

function typesetMath() {
  document.querySelectorAll(".arithmatex").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: inline.concat([{ left: "\\[", right: "\\]", display: true }]),
      throwOnError: false,
    });
  });
  document.querySelectorAll(".md-nav__link, .md-ellipsis").forEach(function (element) {
    renderMathInElement(element, {
      delimiters: inline.concat([{ left: "$", right: "$", display: false }]),
      throwOnError: false,
    });
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(typesetMath); // Material's page-change stream (also on first load)
} else {
  document.addEventListener("DOMContentLoaded", typesetMath);
}
