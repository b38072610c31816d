// The score view: a result as notation, drawn by OpenSheetMusicDisplay from
// the MusicXML the library writes (closed score: two staves). The library is
// served from the project (www/node_modules, installed by ./build.sh) and
// loaded the first time a score is asked for, never before.

const LIBRARY_URL = new URL('./node_modules/opensheetmusicdisplay/build/opensheetmusicdisplay.min.js', import.meta.url);

let loading = null;

/** OpenSheetMusicDisplay's namespace, loading it on the first call. */
function library() {
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = LIBRARY_URL.href;
    script.onload = () =>
      window.opensheetmusicdisplay ? resolve(window.opensheetmusicdisplay) : reject(new Error('the score library did not start'));
    script.onerror = () => {
      loading = null;
      reject(new Error(`the score library could not be loaded (${LIBRARY_URL.pathname})`));
    };
    document.head.append(script);
  });
  return loading;
}

/** Whether the score library has been loaded (for tests and tooling). */
export const scoreLibraryLoaded = () => Boolean(window.opensheetmusicdisplay);

/** Draws the MusicXML text into `container` (its previous drawing replaced). */
export async function showScore(container, musicxml) {
  const { OpenSheetMusicDisplay } = await library();
  container.replaceChildren();
  const osmd = new OpenSheetMusicDisplay(container, {
    backend: 'svg',
    autoResize: false,
    drawTitle: false,
    drawPartNames: false,
    drawingParameters: 'compacttight',
  });
  await osmd.load(musicxml);
  osmd.render();
}
