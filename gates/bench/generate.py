"""Writes a deterministic sales CSV: python3 generate.py OUT ROWS."""
import random
import sys

out, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
regions = ["eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south"]
products = [f"product-{i:03d}" for i in range(200)]
NOTE = '"gift wrap, deliver after 5pm"'  # quoted: it holds the delimiter
with open(out, "w") as f:
    f.write("order_id,day,region,product,customer,email,units,amount,note\n")
    for i in range(rows):
        f.write(
            f"{i},2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},{rng.choice(regions)},"
            f"{rng.choice(products)},cust-{(c := rng.randint(1, 50000))},customer.{c}@example.com,{rng.randint(1, 50)},"
            f"{rng.uniform(1, 5000):.2f},{NOTE if rng.random() < 0.3 else ''}\n"
        )
