// Checks Electra.csproj without the dotnet SDK and prints the sources it compiles, one per line,
// for test.sh to hand to mcs: the csproj is the one list of the binding's sources.
// Usage: mono Csproj.exe Electra.csproj CARGO_VERSION
//
// Checks: well-formed XML; an SDK-style project (Sdk="Microsoft.NET.Sdk") for netstandard2.0 or
// net6.0+; unsafe code allowed; default compile items off, so that the Compile Include globs are
// the whole list, each matching a file and together every .cs under src/; package metadata with
// the crate's version; every native library packed under runtimes/<rid>/native/, only when it
// exists at pack time.

using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Xml;

internal static class Csproj
{
    private static int failures;

    private static void Fail(string msg)
    {
        Console.Error.WriteLine("Electra.csproj: " + msg);
        failures++;
    }

    private static int Main(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: Csproj.exe Electra.csproj CARGO_VERSION");
            return 2;
        }
        string path = Path.GetFullPath(args[0]), dir = Path.GetDirectoryName(path);
        var doc = new XmlDocument();
        try
        {
            doc.Load(path);
        }
        catch (XmlException e)
        {
            Console.Error.WriteLine("Electra.csproj is not well-formed XML: " + e.Message);
            return 1;
        }
        XmlElement root = doc.DocumentElement;
        if (root.Name != "Project" || root.GetAttribute("Sdk") != "Microsoft.NET.Sdk")
            Fail("the root must be <Project Sdk=\"Microsoft.NET.Sdk\">");
        if (root.NamespaceURI != "")
            Fail("an SDK-style project has no xmlns");

        Func<string, string> prop = name =>
        {
            var nodes = root.SelectNodes("PropertyGroup/" + name);
            return nodes.Count == 0 ? null : nodes[nodes.Count - 1].InnerText.Trim();
        };
        string tfm = prop("TargetFramework");
        if (tfm == null || !Regex.IsMatch(tfm, @"^(netstandard2\.[01]|net([6-9]|[1-9]\d)\.\d+)$"))
            Fail("TargetFramework must be netstandard2.0/2.1 or net6.0+, not " + (tfm ?? "missing"));
        if (prop("AllowUnsafeBlocks") != "true")
            Fail("AllowUnsafeBlocks must be true (mcs -unsafe)");
        if (prop("EnableDefaultCompileItems") != "false")
            Fail("EnableDefaultCompileItems must be false: the Compile items are the one list of sources");
        foreach (var name in new[] { "PackageId", "Authors", "Description", "PackageLicenseExpression" })
            if (string.IsNullOrEmpty(prop(name)))
                Fail(name + " is missing");
        if (prop("Version") != args[1])
            Fail(string.Format("Version {0} differs from Cargo.toml's {1}", prop("Version"), args[1]));

        // Sources: the Compile Include globs (dir/*.cs, dir/**/*.cs, or files).
        var sources = new SortedSet<string>(StringComparer.Ordinal);
        foreach (XmlElement c in root.SelectNodes("ItemGroup/Compile"))
        {
            if (c.HasAttribute("Remove") || c.HasAttribute("Condition") || !c.HasAttribute("Include"))
                Fail("a Compile item must be a plain Include (test.sh reads no conditions or removals)");
            foreach (var pattern in c.GetAttribute("Include").Split(';').Select(s => s.Trim()).Where(s => s.Length > 0))
            {
                var found = Expand(dir, pattern.Replace('\\', '/')).ToList();
                if (found.Count == 0)
                    Fail("Compile Include=\"" + pattern + "\" matches no file");
                sources.UnionWith(found);
            }
        }
        if (sources.Count == 0)
            Fail("no Compile items");
        string src = Path.Combine(dir, "src");
        if (Directory.Exists(src))
            foreach (var f in Directory.GetFiles(src, "*.cs", SearchOption.AllDirectories))
                if (!sources.Contains(Path.GetFullPath(f)))
                    Fail(f.Substring(dir.Length + 1) + " is not compiled: no Compile item lists it");

        // Native libraries: runtimes/<rid>/native/<lib>, packed where they are, when they exist.
        int natives = 0;
        foreach (XmlElement n in root.SelectNodes("ItemGroup/None"))
        {
            string inc = n.GetAttribute("Include").Replace('\\', '/'), pp = n.GetAttribute("PackagePath");
            var m = Regex.Match(inc, @"^runtimes/([a-z]+-(x64|x86|arm64|arm))/native/(libelectra\.so|libelectra\.dylib|electra\.dll)$");
            if (!inc.StartsWith("runtimes/") && !pp.StartsWith("runtimes/"))
                continue;
            natives++;
            if (!m.Success)
                Fail("native library " + inc + " is not runtimes/<rid>/native/{libelectra.so,libelectra.dylib,electra.dll}");
            if (n.GetAttribute("Pack") != "true" || pp.TrimEnd('/') != inc.Substring(0, inc.LastIndexOf('/')))
                Fail("native library " + inc + " must have Pack=\"true\" PackagePath=\"" + inc.Substring(0, Math.Max(inc.LastIndexOf('/'), 0)) + "/\"");
            if (n.GetAttribute("Condition").Replace(" ", "") != "Exists('" + inc + "')")
                Fail("native library " + inc + " must be packed only when it exists: Condition=\"Exists('" + inc + "')\"");
        }
        if (natives == 0)
            Fail("no native library under runtimes/<rid>/native/");

        if (failures > 0)
            return 1;
        foreach (var s in sources)
            Console.WriteLine(s);
        return 0;
    }

    private static IEnumerable<string> Expand(string dir, string pattern)
    {
        if (pattern.StartsWith("/") || pattern.Contains(".."))
        {
            Fail("Compile Include=\"" + pattern + "\" leaves the project directory");
            return Enumerable.Empty<string>();
        }
        int slash = pattern.LastIndexOf('/');
        string folder = slash < 0 ? "" : pattern.Substring(0, slash), file = pattern.Substring(slash + 1);
        var option = SearchOption.TopDirectoryOnly;
        if (folder == "**" || folder.EndsWith("/**"))
        {
            option = SearchOption.AllDirectories;
            folder = folder.Substring(0, Math.Max(folder.Length - 3, 0));
        }
        if (folder.Contains("*"))
        {
            Fail("Compile Include=\"" + pattern + "\": only dir/*.cs and dir/**/*.cs globs are understood");
            return Enumerable.Empty<string>();
        }
        string root = Path.Combine(dir, folder);
        if (!Directory.Exists(root))
            return Enumerable.Empty<string>();
        return Directory.GetFiles(root, file, option).Select(Path.GetFullPath);
    }
}
