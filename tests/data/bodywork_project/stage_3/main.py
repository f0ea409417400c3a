import sys

with open("stage_3_output.txt", "w") as f:
    f.write(f"arg1 = {sys.argv[1]}\narg2 = {sys.argv[2]}\n")
