// Colors shared by the charts and the page's own bars.

/** dark says whether the page is drawn for a dark color scheme. */
export const dark = matchMedia("(prefers-color-scheme: dark)").matches;

/** palette is the series colors, in order.*/
export const palette = [
  "#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de",
  "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc", "#8d98b3",
];

