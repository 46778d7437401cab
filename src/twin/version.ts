/**
 * Version of the twin's behaviour: bump it whenever a change makes the same seed and scenario produce different
 * samples, inspections or images, so datasets (their manifests record it) and the models trained on them can tell
 * which twin they came from. 2 = issue 3's twin (process physics, defect hazards, MIK-1 images, scenarios).
 */
export const TWIN_VERSION = "2.0.0";
