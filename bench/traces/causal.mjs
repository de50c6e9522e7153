// Delivering a concurrent trace's transactions as its replay recipe says
// (../../../shared/traces/FORMAT.md): before an agent's transaction, its replica receives every
// transaction the new one builds on that it has not seen yet, in trace order (a topological order).

// The indexes of the transactions reachable from `roots` through `parentsOf(i)` that `seen` (a
// Uint8Array by index) does not mark, ascending; marks them.
export function undelivered(seen, roots, parentsOf) {
  const todo = [], stack = [...roots];
  while (stack.length) {
    const x = stack.pop();
    if (seen[x]) continue;
    seen[x] = 1;
    todo.push(x);
    stack.push(...parentsOf(x));
  }
  return todo.sort((x, y) => x - y);
}
