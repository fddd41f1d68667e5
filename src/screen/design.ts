/**
 * The screen's design, declared before any result (issue "Do bridges make patches?"): which patches are
 * compared, where they are pasted, which placement is the static one and which comparison is primary.
 * Changing any of these changes what the screen claims; the choices are recorded in screen.json.
 */

/** The patch kinds: two made from the pair's bridge cell, six controls. */
export const SCREEN_KINDS = ['icon', 'exemplar', 'noise', 'flat', 'icon-random', 'exemplar-random', 'icon-B', 'crop-B'] as const;
export type ScreenKind = (typeof SCREEN_KINDS)[number];

/** Made from the bridge cell: measured only on pairs that have a bridge. */
export const BRIDGE_KINDS: readonly ScreenKind[] = ['icon', 'exemplar'];

/** What each kind is, in a line (for the report and screen.json). */
export const KIND_DESCRIPTIONS: Record<ScreenKind, string> = {
  icon: 'feature-visualisation icon of the top bridge cell toward B',
  exemplar: 'the real-photo crop (images of neither A nor B) whose activation is closest to the bridge cell\'s mean activation',
  noise: 'uniform random pixels, a fresh draw per pair',
  flat: 'one colour, the tested image\'s mean: occlusion alone',
  'icon-random': 'icon of a random cell of the pair atlas that is not a bridge',
  'exemplar-random': 'the real-photo crop closest to that random cell',
  'icon-B': 'icon of the most B-typical cell (B\'s own feature)',
  'crop-B': 'a crop of a class-B image at its most B-attributed position',
};

/** Patch sides as fractions of the image side, and the corners they are pasted at. */
export const SCREEN_SIZES: readonly number[] = [0.2, 0.3, 0.4];
export const SCREEN_POSITIONS = ['top-left', 'top-right', 'bottom-left', 'bottom-right'] as const;

/** The one placement of the static measure, fixed before any result. */
export const STATIC_PLACEMENT = 'bottom-right@0.3';

/** The primary comparison: the bridge icon against an icon of a random non-bridge cell, on Δ log p(B) at the static placement. */
export const PRIMARY = { kind: 'icon', control: 'icon-random', outcome: 'delta-static' } as const;

/** Secondary comparisons (Holm-corrected together, exploratory): each bridge kind against every control, four outcomes. */
export const SECONDARY_OUTCOMES = ['delta-static', 'delta-dynamic', 'flip-static', 'flip-dynamic'] as const;
export type ScreenOutcome = (typeof SECONDARY_OUTCOMES)[number];

/** A pair "has a bridge" when its best cell scores above 0 and its atlas holds at least this many A-favouring points. */
export const MIN_A_POINTS = 5;
