// Streamed response bodies.
import { Readable } from 'node:stream';

/**
 * A byte stream of `chunks` whose first chunk is already read: what fails before the first byte (a database that
 * does not answer) is still an error response, not a 200 cut short. The rest is read as the client takes it
 * (backpressure: the next chunk only once the last one is taken), and a stream destroyed early (the client went
 * away) closes `chunks`, read from or not.
 */
export async function startedStream(chunks: AsyncIterable<string>): Promise<Readable> {
  const iterator = chunks[Symbol.asyncIterator]();
  let next: IteratorResult<string> | undefined = await iterator.next();
  return new Readable({
    read() {
      const taken = next ?? iterator.next();
      next = undefined;
      Promise.resolve(taken).then(
        (result) => this.push(result.done ? null : result.value),
        (error: Error) => this.destroy(error),
      );
    },
    destroy(error, callback) {
      Promise.resolve(iterator.return?.()).then(() => callback(error), callback);
    },
  });
}
