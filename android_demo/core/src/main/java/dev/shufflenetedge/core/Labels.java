package dev.shufflenetedge.core;

import java.util.ArrayList;
import java.util.List;

/** labels.txt: one class name per line, line i is class i. */
public final class Labels {
    private Labels() {}

    public static List<String> parse(String text, int numClasses) {
        List<String> out = new ArrayList<String>();
        for (String line : text.split("\n", -1)) {
            String s = line.endsWith("\r") ? line.substring(0, line.length() - 1) : line;
            out.add(s.trim());
        }
        while (!out.isEmpty() && out.get(out.size() - 1).isEmpty()) {
            out.remove(out.size() - 1);
        }
        if (numClasses > 0 && out.size() != numClasses) {
            throw new IllegalArgumentException("labels.txt has " + out.size() + " lines, the model has " + numClasses + " classes");
        }
        return out;
    }
}
